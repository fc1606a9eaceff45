// google_options: key, endpoint, TLS and limits for the google providers, validated.
#include "herd/places_setup.h"

#include <cstdlib>

namespace herd {

std::optional<places::GoogleOptions> google_options(const Config& config, std::string* error,
                                                    std::vector<std::string>* warnings) {
  const PlacesConfig& pc = config.places;
  places::GoogleOptions o;
  o.provider = pc.provider;
  const char* key = std::getenv(pc.key_env.c_str());
  if (!key || !*key) {
    *error = config.source + ": places.key_env: the environment variable '" + pc.key_env + "' is " +
             (key ? "empty" : "not set") + "; it must hold the API key for places.provider " + pc.provider;
    return std::nullopt;
  }
  o.key = key;
  std::string endpoint = pc.endpoint.empty() ? pc.default_endpoint() : pc.endpoint;
  std::string why;
  auto url = http::parse_url(endpoint, &why);
  if (!url) {
    *error = config.source + ": places.endpoint: not a usable base URL (" + why + "), got '" + endpoint + "'";
    return std::nullopt;
  }
  o.endpoint = *url;
  if (!url->tls()) {
    warnings->push_back(config.source + ": places.endpoint: '" + endpoint +
                        "' is plain HTTP: the API key and the answers cross the network unencrypted "
                        "(for local testing only)");
    if (!pc.ca_file.empty()) warnings->push_back(config.source + ": places.ca_file: not used with a plain-HTTP endpoint");
  } else {
    *error = config.source + ": places.endpoint: https is not available in this build yet, got '" + endpoint + "'";
    return std::nullopt;
  }
  o.timeout = std::chrono::milliseconds(pc.timeout_ms);
  o.max_inflight = static_cast<size_t>(pc.max_inflight);
  return o;
}

}  // namespace herd
