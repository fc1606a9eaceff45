// Reading a herd config.yaml with yaml-cpp, and BFS hop distances over its links.
#include "tools/load/herd_config.h"

#include <yaml-cpp/yaml.h>

#include <deque>

#include "reactor/host_text.h"

namespace herd_load {

const ServerEntry* HerdConfig::find(const std::string& name) const {
  for (const auto& s : servers)
    if (s.name == name) return &s;
  return nullptr;
}

std::map<std::string, int> HerdConfig::hops_from(const std::string& from) const {
  std::map<std::string, int> hops;
  hops[from] = 0;
  std::deque<std::string> queue{from};
  while (!queue.empty()) {
    std::string at = queue.front();
    queue.pop_front();
    for (const auto& [a, b] : links) {
      const std::string* next = a == at ? &b : b == at ? &a : nullptr;
      if (next && !hops.count(*next)) {
        hops[*next] = hops[at] + 1;
        queue.push_back(*next);
      }
    }
  }
  return hops;
}

bool load_herd_config(const std::string& path, HerdConfig* config, std::string* error) {
  try {
    YAML::Node root = YAML::LoadFile(path);
    YAML::Node servers = root["servers"];
    if (!servers || !servers.IsMap()) {
      *error = path + ": no \"servers:\" map";
      return false;
    }
    for (const auto& kv : servers) {
      ServerEntry s;
      s.name = kv.first.as<std::string>();
      const YAML::Node& v = kv.second;
      if (!v.IsMap() || !v["port"]) {
        *error = path + ": server " + s.name + " has no port";
        return false;
      }
      // herd-server takes IPv6 literals bracketed too ("[::1]", as in URLs): so must its tools.
      if (v["host"]) s.host = std::string(reactor::unbracket_host(v["host"].as<std::string>()));
      s.port = v["port"].as<int>();
      if (v["peer_port"]) s.peer_port = v["peer_port"].as<int>();
      config->servers.push_back(s);
    }
    if (YAML::Node links = root["links"]) {
      for (const auto& link : links) {
        if (!link.IsSequence() || link.size() != 2) {
          *error = path + ": each link must be [A, B]";
          return false;
        }
        std::string a = link[0].as<std::string>(), b = link[1].as<std::string>();
        if (!config->find(a) || !config->find(b)) {
          *error = path + ": link names an unknown server: " + a + " - " + b;
          return false;
        }
        config->links.emplace_back(a, b);
      }
    }
  } catch (const YAML::Exception& e) {
    *error = path + ": " + e.what();
    return false;
  }
  return true;
}

}  // namespace herd_load
