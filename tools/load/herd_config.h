// HerdConfig: the servers and links of a herd config.yaml, and hop distances over its links.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace herd_load {

struct ServerEntry {
  std::string name;
  std::string host = "127.0.0.1";
  int port = 0;
  int peer_port = 0;
};

struct HerdConfig {
  std::vector<ServerEntry> servers;
  std::vector<std::pair<std::string, std::string>> links;

  const ServerEntry* find(const std::string& name) const;
  // Hops from `from` to every server reachable over links (BFS); unreachable ones are absent.
  std::map<std::string, int> hops_from(const std::string& from) const;
};

// Reads `servers:` (name -> {host, port, peer_port}) and `links:` (list of [A, B]) from a YAML
// file. Returns false with *error set when the file is missing or not of that shape.
bool load_herd_config(const std::string& path, HerdConfig* config, std::string* error);

}  // namespace herd_load
