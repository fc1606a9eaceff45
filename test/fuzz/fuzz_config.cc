// Fuzz harness: the configuration loader (herd/config.h) on arbitrary YAML. Properties: it returns a
// config or an error message, never both and never neither, and never throws; an accepted config
// satisfies the validation rules the README states (ports, links, names).
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "herd/config.h"
#include "test/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 4096) return 0;  // configs are small; long inputs only slow the search
  std::string yaml(reinterpret_cast<const char*>(data), size);
  std::string error;
  std::vector<std::string> warnings;
  auto config = herd::parse_config(yaml, "fuzz.yaml", &error, &warnings);
  FUZZ_CHECK(config.has_value() == error.empty());
  if (!config) {
    FUZZ_CHECK(error.rfind("fuzz.yaml: ", 0) == 0);
    return 0;
  }
  FUZZ_CHECK(!config->servers.empty());
  for (const auto& s : config->servers) {
    FUZZ_CHECK(!s.name.empty() && s.port != 0 && s.peer_port != 0 && s.port != s.peer_port);
    FUZZ_CHECK(config->find(s.name) == &s);
  }
  for (const auto& [a, b] : config->links) FUZZ_CHECK(config->find(a) && config->find(b) && a != b);
  FUZZ_CHECK(config->peer_max_line() > config->limits.max_line);
  FUZZ_CHECK(config->loop_count() >= 1);
  return 0;
}
