// Propagation mode: how long an IAMAT at one server takes to become visible (via WHATSAT) at
// every other server of a herd, reported by hop distance from the entry server.
#pragma once

#include "tools/load/options.h"

namespace herd_load {

// Runs --propagation N against --config/--entry; prints the report; returns the exit status.
int run_propagation(const Options& options);

}  // namespace herd_load
