// google_options: key, endpoint, TLS and limits for the google providers, validated.
#include "herd/places_setup.h"

#include <cstdlib>

#include "reactor/tls_context.h"

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
  // Google's keys are letters, digits, '-' and '_'. A space or a control byte is a mistake in the
  // environment (a line break from a key file, say): google-new would put it in a header (a line
  // break there fails every request), google would send a key Google refuses.
  for (const char* c = key; *c; ++c) {
    const auto byte = static_cast<unsigned char>(*c);
    if (byte <= ' ' || byte == 0x7f) {
      *error = config.source + ": places.key_env: the environment variable '" + pc.key_env +
               "' holds a space or control character (a line break?); an API key has none";
      return std::nullopt;
    }
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
    // The system store, plus places.ca_file when given (a private CA, such as the simulator's).
    reactor::TlsContext::Options tls;
    tls.ca_file = pc.ca_file.empty() ? "" : config.resolve_path(pc.ca_file);
    auto context = reactor::TlsContext::create(tls, &why);
    if (!context) {
      *error = config.source + ": places.ca_file: cannot use '" + pc.ca_file + "': " + why;
      return std::nullopt;
    }
    if (!pc.ca_file.empty() && SSL_CTX_set_default_verify_paths(context->native()) != 1) {
      *error = config.source + ": places.ca_file: cannot add the system's trusted CAs to '" + pc.ca_file +
               "': " + reactor::take_tls_errors("no reason given");
      return std::nullopt;
    }
    o.tls = std::move(context);
  }
  o.timeout = std::chrono::milliseconds(pc.timeout_ms);
  o.max_inflight = static_cast<size_t>(pc.max_inflight);
  o.loops = static_cast<size_t>(config.loop_count());
  return o;
}

}  // namespace herd
