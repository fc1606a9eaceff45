// Turns the `places:` section of the config into the options of a google provider: the API key
// from the environment variable places.key_env, the endpoint URL (or the provider's default), the
// TLS context that verifies it (the system store, plus places.ca_file), timeout and max_inflight.
// Everything a bad setting can break is checked here, before the server starts, so it is a
// configuration error (exit 2) naming the file, the key and the value, and never the API key.
//
// Threads: main thread, at start-up. Reads the environment.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "herd/config.h"
#include "places/google_places.h"

namespace herd {

// The options for places.provider google or google-new (the log callback is left for the caller
// to set). nullopt with *error set on a configuration error; notes such as a plain-HTTP endpoint go
// to *warnings.
std::optional<places::GoogleOptions> google_options(const Config& config, std::string* error,
                                                    std::vector<std::string>* warnings);

}  // namespace herd
