// Config loading with yaml-cpp, and validation of every key.
#include "herd/config.h"

#include <sys/stat.h>
#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstring>
#include <algorithm>
#include <fstream>
#include <map>
#include <set>
#include <stdexcept>
#include <thread>

#include "http/url.h"
#include "protocol/fields.h"
#include "protocol/reply.h"
#include "reactor/host_text.h"

namespace herd {
namespace {

// The longest server name: NAME.log must fit the 255 bytes a file name may have.
constexpr size_t kMaxServerName = 255 - 4;

// Thrown inside the parser with the message that reaches the user; caught at the API boundary.
struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string describe(const YAML::Node& node) {
  if (!node.IsDefined() || node.IsNull()) return "nothing";
  if (node.IsScalar()) return "'" + node.Scalar() + "'";
  if (node.IsSequence()) return "a list";
  return "a mapping";
}

std::string at_line(const YAML::Node& node) {
  if (!node.IsDefined() || node.Mark().line < 0) return "";
  return " (line " + std::to_string(node.Mark().line + 1) + ")";
}

class Parser {
 public:
  Parser(std::string source, std::vector<std::string>* warnings, bool strict)
      : source_(std::move(source)), warnings_(warnings), strict_(strict) {}

  [[noreturn]] void fail(const std::string& key, const YAML::Node& node, const std::string& what) {
    throw ConfigError(source_ + ": " + key + ": " + what + ", got " + describe(node) + at_line(node));
  }
  // For errors where the value is already named in `what`.
  [[noreturn]] void fail_plain(const std::string& key, const YAML::Node& node, const std::string& what) {
    throw ConfigError(source_ + ": " + key + ": " + what + at_line(node));
  }
  void warn(const std::string& message) { warnings_->push_back(source_ + ": " + message); }

  // The text of a mapping key. A key that is a list, a mapping or null (`? [a]`, `~:`) is valid YAML
  // but names nothing (yaml-cpp would read null as "null", PyYAML as None): refused by name.
  std::string key_text(const YAML::Node& key, const std::string& where) {
    if (!key.IsScalar()) {
      fail_plain(where.empty() ? "(top level)" : where, key,
                 "a key must be a name, got " + (key.IsNull() ? std::string("null") : describe(key)));
    }
    return key.Scalar();
  }

  void check_keys(const YAML::Node& map, const std::string& where, std::set<std::string> known) {
    for (const auto& kv : map) {
      std::string key = key_text(kv.first, where);
      if (!known.count(key)) {
        if (strict_) fail_plain((where.empty() ? "" : where + ".") + key, kv.first, "unknown key (strict)");
        warn((where.empty() ? "" : where + ".") + key + ": unknown key, ignored" + at_line(kv.first));
      }
    }
  }

  // yaml-cpp keeps every copy of a repeated key and lookups find the first, while PyYAML (the
  // reference server, tools/run_herd.py, tools/certs.py) keeps the last: a repeated key would make
  // them read one file two ways. So a key given twice in any mapping is an error.
  void check_unique_keys(const YAML::Node& node, const std::string& where) {
    if (node.IsSequence()) {
      for (size_t i = 0; i < node.size(); ++i) check_unique_keys(node[i], where + "[" + std::to_string(i) + "]");
      return;
    }
    if (!node.IsMap()) return;
    std::map<std::string, YAML::Node> seen;
    for (const auto& kv : node) {
      const std::string key = kv.first.IsScalar() ? kv.first.Scalar() : describe(kv.first);
      const std::string path = where.empty() ? key : where + "." + key;
      auto [it, fresh] = seen.emplace(key, kv.first);
      if (!fresh) {
        throw ConfigError(source_ + ": " + path + ": given twice (lines " +
                          std::to_string(it->second.Mark().line + 1) + " and " +
                          std::to_string(kv.first.Mark().line + 1) + "); remove one");
      }
      check_unique_keys(kv.second, path);
    }
  }

  long long integer(const YAML::Node& node, const std::string& key, long long lo, long long hi) {
    if (!node.IsScalar()) fail(key, node, "expected an integer from " + std::to_string(lo) + " to " + std::to_string(hi));
    const std::string& s = node.Scalar();
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(s, &used, 10);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != s.size() || v < lo || v > hi) {
      fail(key, node, "expected an integer from " + std::to_string(lo) + " to " + std::to_string(hi));
    }
    return v;
  }

  std::string string(const YAML::Node& node, const std::string& key) {
    if (!node.IsScalar() || node.Scalar().empty()) fail(key, node, "expected a non-empty string");
    return node.Scalar();
  }

  Config parse(const YAML::Node& root) {
    Config c;
    c.source = source_;
    if (!root.IsMap()) fail("(top level)", root, "expected a mapping with servers and links");
    check_unique_keys(root, "");
    if (auto st = root["strict"]) {
      if (!st.IsScalar() || (st.Scalar() != "true" && st.Scalar() != "false")) fail("strict", st, "expected true or false");
      strict_ = strict_ || st.Scalar() == "true";
      c.strict = strict_;
    }
    check_keys(root, "", {"threads", "accept", "log_dir", "places", "servers", "links", "limits", "peer_backoff",
                       "admin_token_env", "log_level", "log_max_bytes", "log_keep", "strict",
                       "shutdown_timeout_ms", "peer_tls", "data_dir", "fsync", "compact_bytes",
                       "table_records"});
    if (root["threads"]) c.threads = static_cast<int>(integer(root["threads"], "threads", 0, 256));
    if (auto a = root["accept"]) {
      const std::string mode = string(a, "accept");
      if (mode == accept_mode_name(AcceptMode::kExclusive)) {
        c.accept = AcceptMode::kExclusive;
      } else if (mode == accept_mode_name(AcceptMode::kReusePort)) {
        c.accept = AcceptMode::kReusePort;
      } else {
        fail("accept", a, "expected one of exclusive, reuseport");
      }
    }
    if (root["log_dir"]) c.log_dir = string(root["log_dir"], "log_dir");
    if (auto lv = root["log_level"]) {
      c.log_level = string(lv, "log_level");
      if (c.log_level != "io" && c.log_level != "events" && c.log_level != "warnings") {
        fail("log_level", lv, "expected one of io, events, warnings");
      }
    }
    if (root["log_max_bytes"]) c.log_max_bytes = static_cast<uint64_t>(integer(root["log_max_bytes"], "log_max_bytes", 0, 1LL << 50));
    if (c.log_max_bytes != 0 && c.log_max_bytes < 4096) fail("log_max_bytes", root["log_max_bytes"], "expected 0 (no limit) or at least 4096");
    if (root["log_keep"]) c.log_keep = static_cast<int>(integer(root["log_keep"], "log_keep", 1, 1000));
    if (root["shutdown_timeout_ms"]) c.shutdown_timeout_ms = static_cast<int>(integer(root["shutdown_timeout_ms"], "shutdown_timeout_ms", 0, 600000));
    if (root["admin_token_env"]) c.admin_token_env = string(root["admin_token_env"], "admin_token_env");
    if (auto tr = root["table_records"]) {
      const std::string v = string(tr, "table_records");
      if (v != "packed" && v != "plain") fail("table_records", tr, "expected packed or plain");
      c.packed_records = v == "packed";
    }
    if (auto p = root["places"]) parse_places(p, &c.places);
    parse_servers(root["servers"], &c);
    parse_links(root["links"], &c);
    if (auto l = root["limits"]) parse_limits(l, &c.limits);
    if (auto b = root["peer_backoff"]) {
      if (!b.IsMap()) fail("peer_backoff", b, "expected a mapping with initial_ms and max_ms");
      check_keys(b, "peer_backoff", {"initial_ms", "max_ms"});
      if (b["initial_ms"]) c.peer_backoff_initial_ms = static_cast<int>(integer(b["initial_ms"], "peer_backoff.initial_ms", 1, 600000));
      if (b["max_ms"]) c.peer_backoff_max_ms = static_cast<int>(integer(b["max_ms"], "peer_backoff.max_ms", 1, 3600000));
      if (c.peer_backoff_max_ms < c.peer_backoff_initial_ms) {
        if (b["max_ms"]) {
          fail("peer_backoff.max_ms", b["max_ms"], "must be at least initial_ms (" + std::to_string(c.peer_backoff_initial_ms) + ")");
        }
        fail("peer_backoff.initial_ms", b["initial_ms"],
             "must be at most max_ms (" + std::to_string(c.peer_backoff_max_ms) + " unless given)");
      }
    }
    if (auto t = root["peer_tls"]) c.peer_tls = parse_peer_tls(t);
    if (root["data_dir"]) c.data_dir = string(root["data_dir"], "data_dir");
    if (root["fsync"]) {
      c.fsync = string(root["fsync"], "fsync");
      if (c.fsync != "always" && c.fsync != "everysec" && c.fsync != "no") {
        fail("fsync", root["fsync"], "expected one of always, everysec, no");
      }
    }
    if (root["compact_bytes"]) {
      c.compact_bytes = static_cast<size_t>(integer(root["compact_bytes"], "compact_bytes", 4096, 1LL << 40));
    }
    if (c.data_dir.empty() && (root["fsync"] || root["compact_bytes"])) {
      warn("fsync and compact_bytes have no effect without data_dir (memory only)");
    }
    for (const auto& s : c.servers) {
      if (c.neighbours(s.name).empty()) warn("servers." + s.name + ": has no links; it will hear of no other server's clients");
    }
    return c;
  }

 private:
  void parse_places(const YAML::Node& p, PlacesConfig* out) {
    if (!p.IsMap()) fail("places", p, "expected a mapping with a provider");
    check_keys(p, "places", {"provider", "gazetteer", "key_env", "endpoint", "ca_file", "timeout_ms", "max_inflight"});
    if (p["provider"]) {
      out->provider = string(p["provider"], "places.provider");
      if (out->provider != "offline" && out->provider != "google" && out->provider != "google-new") {
        fail("places.provider", p["provider"], "expected one of offline, google, google-new");
      }
    }
    if (p["gazetteer"]) out->gazetteer = string(p["gazetteer"], "places.gazetteer");
    if (p["key_env"]) {
      out->key_env = string(p["key_env"], "places.key_env");
      for (char ch : out->key_env) {
        if (!(ch == '_' || (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9'))) {
          fail("places.key_env", p["key_env"], "expected the name of an environment variable (letters, digits, _)");
        }
      }
    }
    if (p["endpoint"]) {
      out->endpoint = string(p["endpoint"], "places.endpoint");
      std::string why;
      if (!http::parse_url(out->endpoint, &why)) fail("places.endpoint", p["endpoint"], "not a usable base URL (" + why + ")");
    }
    if (p["ca_file"] && !p["ca_file"].IsNull() && !(p["ca_file"].IsScalar() && p["ca_file"].Scalar().empty())) {
      out->ca_file = string(p["ca_file"], "places.ca_file");
    }
    if (p["timeout_ms"]) out->timeout_ms = static_cast<int>(integer(p["timeout_ms"], "places.timeout_ms", 100, 600000));
    if (p["max_inflight"]) out->max_inflight = static_cast<int>(integer(p["max_inflight"], "places.max_inflight", 1, 1000000));
  }

  PeerTlsConfig parse_peer_tls(const YAML::Node& t) {
    if (!t.IsMap()) fail("peer_tls", t, "expected a mapping with ca_file, cert_file and key_file");
    check_keys(t, "peer_tls", {"ca_file", "cert_file", "key_file"});
    PeerTlsConfig out;
    for (auto [key, field] : {std::pair{"ca_file", &out.ca_file}, std::pair{"cert_file", &out.cert_file},
                              std::pair{"key_file", &out.key_file}}) {
      std::string name = std::string("peer_tls.") + key;
      if (!t[key]) fail(name, t[key], "is required (a PEM file; {name} stands for the server's name)");
      *field = string(t[key], name);
    }
    return out;
  }

  void parse_servers(const YAML::Node& servers, Config* c) {
    if (!servers.IsDefined()) fail("servers", servers, "is required: a mapping of server names to { port, peer_port }");
    if (!servers.IsMap() || servers.size() == 0) fail("servers", servers, "expected a non-empty mapping of server names");
    std::map<std::pair<std::string, int>, std::string> used_ports;  // (host, port) -> "Name.key"
    for (const auto& kv : servers) {
      ServerConfig s;
      s.name = key_text(kv.first, "servers");
      std::string key = "servers." + s.name;
      if (s.name.empty()) fail("servers", kv.first, "a server name must not be empty");
      for (char ch : s.name) {
        // Names travel in AT lines (whitespace-separated) and in the comma-separated seen= field.
        if (protocol::is_space(static_cast<unsigned char>(ch)) || ch == ',') {
          fail(key, kv.first, "a server name must not contain whitespace or commas");
        }
      }
      // A name is also its log file's name, <log_dir>/<name>.log: one file name inside log_dir.
      if (s.name.find('/') != std::string::npos || s.name.find('\0') != std::string::npos || s.name == "." ||
          s.name == "..") {
        fail(key, kv.first, "a server name is its log file's name: it must not contain '/' or NUL, or be '.' or '..'");
      }
      if (s.name.size() > kMaxServerName) {
        fail(key, kv.first, "a server name is its log file's name: at most " + std::to_string(kMaxServerName) +
                                " bytes (the file system's limit, with \".log\")");
      }
      if (c->find(s.name)) fail(key, kv.first, "duplicate server name");
      const YAML::Node& v = kv.second;
      if (!v.IsMap()) fail(key, v, "expected a mapping { host, port, peer_port }");
      check_keys(v, key, {"host", "port", "peer_port", "listen", "admin_port", "admin_listen"});
      // An address: an IPv6 literal may be written bracketed ("[::1]"), as in URLs.
      auto address = [&](const char* k) { return std::string(reactor::unbracket_host(string(v[k], key + "." + k))); };
      if (v["host"]) s.host = address("host");
      if (v["listen"]) s.listen = address("listen");
      if (v["admin_listen"]) s.admin_listen = address("admin_listen");
      if (v["admin_port"]) s.admin_port = static_cast<uint16_t>(integer(v["admin_port"], key + ".admin_port", 1, 65535));
      if (!v["port"]) fail(key + ".port", v["port"], "is required");
      if (!v["peer_port"]) fail(key + ".peer_port", v["peer_port"], "is required");
      s.port = static_cast<uint16_t>(integer(v["port"], key + ".port", 1, 65535));
      s.peer_port = static_cast<uint16_t>(integer(v["peer_port"], key + ".peer_port", 1, 65535));
      for (auto [which, port] : {std::pair<const char*, int>{"port", s.port}, {"peer_port", s.peer_port},
                                 {"admin_port", s.admin_port}}) {
        if (port == 0) continue;
        auto [it, fresh] = used_ports.emplace(std::make_pair(s.host, port), s.name + "." + which);
        if (!fresh) fail(key + "." + which, v[which], "port already used by servers." + it->second);
      }
      c->servers.push_back(std::move(s));
    }
  }

  void parse_links(const YAML::Node& links, Config* c) {
    if (!links.IsDefined() || links.IsNull()) return;  // a herd of unconnected servers is allowed
    if (!links.IsSequence()) fail("links", links, "expected a list of [A, B] pairs");
    std::set<std::pair<std::string, std::string>> seen;
    for (size_t i = 0; i < links.size(); ++i) {
      const YAML::Node& l = links[i];
      std::string key = "links[" + std::to_string(i) + "]";
      if (!l.IsSequence() || l.size() != 2 || !l[0].IsScalar() || !l[1].IsScalar()) {
        fail(key, l, "expected a pair of server names like [Goloman, Hands]");
      }
      std::string a = l[0].Scalar(), b = l[1].Scalar();
      if (!c->find(a)) fail(key, l[0], "names no server listed under servers");
      if (!c->find(b)) fail(key, l[1], "names no server listed under servers");
      if (a == b) fail_plain(key, l, "server " + a + " cannot link to itself");
      auto norm = a < b ? std::make_pair(a, b) : std::make_pair(b, a);
      if (!seen.insert(norm).second) fail_plain(key, l, "duplicate link " + a + " - " + b);
      c->links.emplace_back(a, b);
    }
  }

  void parse_limits(const YAML::Node& l, Limits* out) {
    if (!l.IsMap()) fail("limits", l, "expected a mapping");
    check_keys(l, "limits", {"max_line", "max_connections", "max_pending_replies", "max_output_bytes",
                             "peer_backlog_bytes", "peer_outbox_bytes", "log_backlog_bytes", "max_clients",
                             "max_table_bytes", "max_id_bytes", "max_clock_skew", "max_buffered_bytes",
                             "line_timeout_ms", "idle_timeout_ms", "write_timeout_ms", "peer_hello_timeout_ms",
                             "peer_timeout_ms"});
    auto get = [&](const char* name, size_t* field, long long lo, long long hi) {
      if (l[name]) *field = static_cast<size_t>(integer(l[name], std::string("limits.") + name, lo, hi));
    };
    get("max_line", &out->max_line, 64, 16 << 20);
    get("max_connections", &out->max_connections, 1, 10000000);
    get("max_pending_replies", &out->max_pending_replies, 1, 1 << 20);
    get("max_output_bytes", &out->max_output_bytes, 4096, 1LL << 32);
    get("peer_backlog_bytes", &out->peer_backlog_bytes, 4096, 1LL << 34);
    if (l["peer_outbox_bytes"]) {  // its name before the per-link outboxes became one shared backlog
      size_t old_name = 0;
      get("peer_outbox_bytes", &old_name, 4096, 1LL << 34);
      if (l["peer_backlog_bytes"]) {
        warn("limits.peer_outbox_bytes: renamed limits.peer_backlog_bytes, which is also given; ignored" +
             at_line(l["peer_outbox_bytes"]));
      } else {
        warn("limits.peer_outbox_bytes: renamed limits.peer_backlog_bytes; taken as that" + at_line(l["peer_outbox_bytes"]));
        out->peer_backlog_bytes = old_name;
      }
    }
    get("log_backlog_bytes", &out->log_backlog_bytes, 4096, 1LL << 34);
    get("max_clients", &out->max_clients, 1, 1LL << 32);
    get("max_table_bytes", &out->max_table_bytes, 1 << 20, 1LL << 40);
    get("max_id_bytes", &out->max_id_bytes, 1, 16 << 20);
    get("max_buffered_bytes", &out->max_buffered_bytes, 1 << 20, 1LL << 40);
    auto get64 = [&](const char* name, int64_t* field, long long lo, long long hi) {
      if (l[name]) *field = integer(l[name], std::string("limits.") + name, lo, hi);
    };
    constexpr long long kDay = 86400, kHourMs = 3600 * 1000;
    get64("max_clock_skew", &out->max_clock_skew, 0, 3650 * kDay);
    get64("line_timeout_ms", &out->line_timeout_ms, 0, 24 * kHourMs);
    get64("idle_timeout_ms", &out->idle_timeout_ms, 0, 24 * 7 * kHourMs);
    get64("write_timeout_ms", &out->write_timeout_ms, 0, 24 * kHourMs);
    get64("peer_hello_timeout_ms", &out->peer_hello_timeout_ms, 1, kHourMs);
    get64("peer_timeout_ms", &out->peer_timeout_ms, 1000, kHourMs);
  }

  std::string source_;
  std::vector<std::string>* warnings_;
  bool strict_;
};

}  // namespace

std::string PlacesConfig::default_endpoint() const {
  return provider == "google-new" ? "https://places.googleapis.com" : "https://maps.googleapis.com";
}

const char* accept_mode_name(AcceptMode mode) {
  return mode == AcceptMode::kReusePort ? "reuseport" : "exclusive";
}

int Config::loop_count() const {
  int n = threads > 0 ? threads : static_cast<int>(std::thread::hardware_concurrency());
  return n < 1 ? 1 : n;
}

const ServerConfig* Config::find(std::string_view name) const {
  for (const auto& s : servers) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

int Config::index_of(std::string_view name) const {
  const ServerConfig* s = find(name);
  return s ? static_cast<int>(s - servers.data()) : -1;
}

std::vector<const ServerConfig*> Config::neighbours(std::string_view name) const {
  std::vector<const ServerConfig*> out;
  for (const auto& [a, b] : links) {
    if (a == name) out.push_back(find(b));
    if (b == name) out.push_back(find(a));
  }
  return out;
}

size_t Config::peer_max_line() const {
  size_t longest_name = 0;
  size_t all_names = 0;
  for (const auto& s : servers) {
    longest_name = std::max(longest_name, s.name.size());
    all_names += s.name.size() + 1;  // the name and its comma
  }
  return limits.max_line + longest_name + protocol::kAtLineGrowth + std::string_view(" seen=").size() +
         all_names;
}

std::string Config::resolve_path(const std::string& path) const {
  if (path.empty() || path[0] == '/' || base_dir.empty()) return path;
  return base_dir + "/" + path;
}

std::string Config::peer_tls_path(const std::string& path, std::string_view server) const {
  std::string expanded = path;
  for (size_t at = expanded.find("{name}"); at != std::string::npos; at = expanded.find("{name}", at + server.size())) {
    expanded.replace(at, 6, server);
  }
  return resolve_path(expanded);
}

std::optional<Config> parse_config(const std::string& yaml, const std::string& source,
                                   std::string* error, std::vector<std::string>* warnings, bool strict) {
  try {
    YAML::Node root = YAML::Load(yaml);
    Parser parser(source, warnings, strict);
    return parser.parse(root);
  } catch (const ConfigError& e) {
    *error = e.what();
  } catch (const YAML::Exception& e) {
    *error = source + ": not valid YAML: " + e.msg + " (line " + std::to_string(e.mark.line + 1) +
             ", column " + std::to_string(e.mark.column + 1) + ")";
  }
  return std::nullopt;
}

std::optional<Config> load_config(const std::string& path, std::string* error,
                                  std::vector<std::string>* warnings, bool strict) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    *error = path + ": cannot read the config file: " + std::strerror(errno);
    return std::nullopt;
  }
  if (S_ISDIR(st.st_mode)) {
    *error = path + ": cannot read the config file: " + std::strerror(EISDIR);
    return std::nullopt;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = path + ": cannot read the config file: " + std::strerror(errno);
    return std::nullopt;
  }
  // Read with a bound: --config /dev/zero, or a log file named by mistake, must be an error, not
  // all of memory. (A pipe, such as /dev/stdin, is fine.)
  std::string text(kMaxConfigBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > kMaxConfigBytes) {
    *error = path + ": the config file is larger than " + std::to_string(kMaxConfigBytes >> 20) +
             " MiB; is it the right file?";
    return std::nullopt;
  }
  if (in.bad()) {
    *error = path + ": cannot read the config file: " + std::strerror(errno);
    return std::nullopt;
  }
  auto c = parse_config(text, path, error, warnings, strict);
  if (c) {
    auto slash = path.rfind('/');
    c->base_dir = slash == std::string::npos ? "." : path.substr(0, slash == 0 ? 1 : slash);
  }
  return c;
}

}  // namespace herd
