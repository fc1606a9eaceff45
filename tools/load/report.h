// Report: the run's final figures, printed as a human-readable table or as one JSON object.
#pragma once

#include <string>

#include "tools/load/options.h"
#include "tools/load/stats.h"

namespace herd_load {

struct RunResult {
  Stats stats;
  double measured_seconds = 0;  // the measured window (after warmup)
  double wall_seconds = 0;      // the whole run, seeding and warmup included
  double cpu_seconds = 0;       // the generator's own user+sys CPU over the whole run
  std::string abort_reason;     // empty unless the run stopped early
};

void print_text_report(const Options& options, const RunResult& result);
void print_json_report(const Options& options, const RunResult& result);

}  // namespace herd_load
