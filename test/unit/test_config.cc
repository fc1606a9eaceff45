// Config: the default herd parses as documented; every broken config is refused with a message
// that names the key and the value; questionable ones only warn.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "herd/config.h"

namespace {

const char* kHerd = R"(
threads: 2
log_dir: logs
places:
  provider: offline
servers:
  Goloman: { host: 127.0.0.1, port: 12000, peer_port: 13000 }
  Hands:   { port: 12001, peer_port: 13001 }
  Welsh:   { port: 12003, peer_port: 13003 }
links:
  - [Goloman, Hands]
  - [Welsh, Goloman]
)";

struct Parsed {
  std::optional<herd::Config> config;
  std::string error;
  std::vector<std::string> warnings;
};

Parsed parse(const std::string& text) {
  Parsed p;
  p.config = herd::parse_config(text, "test.yaml", &p.error, &p.warnings);
  return p;
}

// The error for `text`, which must be refused.
std::string refused(const std::string& text) {
  Parsed p = parse(text);
  CHECK_FALSE(p.config.has_value());
  CHECK(p.error.rfind("test.yaml: ", 0) == 0);
  return p.error;
}

std::string with_servers(const std::string& servers, const std::string& links = "") {
  return "servers:\n" + servers + (links.empty() ? "" : "links:\n" + links);
}

bool contains(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }

}  // namespace

TEST_SUITE("config") {
  TEST_CASE("a well-formed herd parses, with defaults filled in") {
    Parsed p = parse(kHerd);
    REQUIRE(p.config.has_value());
    const herd::Config& c = *p.config;
    for (const auto& w : p.warnings) CHECK_FALSE(contains(w, "unknown key"));
    CHECK(c.threads == 2);
    CHECK(c.places.provider == "offline");
    REQUIRE(c.servers.size() == 3);
    CHECK(c.find("Hands")->host == "127.0.0.1");
    CHECK(c.find("Hands")->port == 12001);
    CHECK(c.find("Welsh")->peer_port == 13003);
    CHECK(c.find("Nobody") == nullptr);
    auto n = c.neighbours("Goloman");
    REQUIRE(n.size() == 2);
    CHECK(n[0]->name == "Hands");
    CHECK(n[1]->name == "Welsh");
    CHECK(c.neighbours("Hands").size() == 1);
    CHECK(c.limits.max_line == 65536);
  }

  TEST_CASE("the repository's config.yaml is the five-server herd of SPEC.md") {
    std::string error;
    std::vector<std::string> warnings;
    auto c = herd::load_config("config.yaml", &error, &warnings);
    REQUIRE_MESSAGE(c.has_value(), error);
    CHECK(warnings.empty());
    CHECK(c->servers.size() == 5);
    CHECK(c->links.size() == 6);
    CHECK(c->neighbours("Welsh").size() == 1);
    CHECK(c->neighbours("Goloman").size() == 3);
    // A TLS herd out of the box, with the certificates of `make certs`.
    REQUIRE(c->peer_tls.has_value());
    CHECK(c->peer_tls_path(c->peer_tls->cert_file, "Hands") == "./certs/Hands.pem");
    CHECK(c->peer_tls_path(c->peer_tls->key_file, "Hands") == "./certs/Hands.key");
    CHECK(c->peer_tls_path(c->peer_tls->ca_file, "Hands") == "./certs/ca.pem");
  }

  TEST_CASE("peer_tls: three files, {name} expanded, all required; absent means plaintext") {
    CHECK_FALSE(parse(kHerd).config->peer_tls.has_value());
    Parsed p = parse(std::string(kHerd) +
                     "peer_tls: { ca_file: /etc/herd/ca.pem, cert_file: 'tls/{name}-{name}.crt', key_file: 'k/{name}' }\n");
    REQUIRE(p.config.has_value());
    herd::Config c = *p.config;
    c.base_dir = "/srv";
    CHECK(c.peer_tls_path(c.peer_tls->ca_file, "Welsh") == "/etc/herd/ca.pem");
    CHECK(c.peer_tls_path(c.peer_tls->cert_file, "Welsh") == "/srv/tls/Welsh-Welsh.crt");
    CHECK(c.peer_tls_path(c.peer_tls->key_file, "Welsh") == "/srv/k/Welsh");
    CHECK(contains(refused(std::string(kHerd) + "peer_tls: { ca_file: ca.pem, cert_file: c.pem }\n"),
                   "peer_tls.key_file: is required"));
    CHECK(contains(refused(std::string(kHerd) + "peer_tls: { ca_file: '', cert_file: c.pem, key_file: k }\n"),
                   "peer_tls.ca_file: expected a non-empty string, got ''"));
    CHECK(contains(refused(std::string(kHerd) + "peer_tls: yes\n"), "peer_tls: expected a mapping"));
    Parsed extra = parse(std::string(kHerd) + "peer_tls: { ca_file: a, cert_file: b, key_file: c, verify: no }\n");
    REQUIRE(extra.config.has_value());
    REQUIRE(extra.warnings.size() == 1);
    CHECK(contains(extra.warnings[0], "peer_tls.verify: unknown key"));
  }

  TEST_CASE("broken configs are refused with the key and value named") {
    CHECK(contains(refused("threads: 2\n"), "servers: is required"));
    CHECK(contains(refused("servers: []\n"), "servers"));
    CHECK(contains(refused(with_servers("  A: { port: 1, peer_port: 2 }\n", "  - [A, B]\n")), "links[0]: names no server"));
    CHECK(contains(refused(with_servers("  A: { port: 1, peer_port: 2 }\n", "  - [A, A]\n")), "itself"));
    CHECK(contains(refused(with_servers("  A: { port: 1, peer_port: 2 }\n  B: { port: 3, peer_port: 4 }\n",
                                        "  - [A, B]\n  - [B, A]\n")),
                   "links[1]: duplicate link"));
    std::string dup = refused(with_servers("  A: { port: 1, peer_port: 2 }\n  B: { port: 3, peer_port: 1 }\n"));
    CHECK(contains(dup, "servers.B.peer_port"));
    CHECK(contains(dup, "servers.A.port"));
    CHECK(contains(refused(with_servers("  A: { peer_port: 2 }\n")), "servers.A.port: is required"));
    CHECK(contains(refused(with_servers("  A: { port: 1 }\n")), "servers.A.peer_port: is required"));
    std::string range = refused(with_servers("  A: { port: 70000, peer_port: 2 }\n"));
    CHECK(contains(range, "servers.A.port"));
    CHECK(contains(range, "'70000'"));
    CHECK(contains(refused(with_servers("  A: { port: twelve, peer_port: 2 }\n")), "'twelve'"));
    CHECK(contains(refused("threads: -1\n" + with_servers("  A: { port: 1, peer_port: 2 }\n")), "threads"));
    CHECK(contains(refused("places: { provider: bing }\n" + with_servers("  A: { port: 1, peer_port: 2 }\n")), "'bing'"));
    CHECK(contains(refused(with_servers("  A: { port: 1, peer_port: 2 }\n", "  - [A]\n")), "links[0]"));
    CHECK(contains(refused("servers: {A: [\n"), "not valid YAML"));
    CHECK(contains(refused("peer_backoff: { initial_ms: 500, max_ms: 10 }\n" + with_servers("  A: { port: 1, peer_port: 2 }\n")),
                   "peer_backoff.max_ms"));
    // Without max_ms, its default is what initial_ms is above: the message names what was given.
    std::string backoff = refused("peer_backoff: { initial_ms: 10000 }\n" + with_servers("  A: { port: 1, peer_port: 2 }\n"));
    CHECK(contains(backoff, "peer_backoff.initial_ms: must be at most max_ms (5000 unless given), got '10000'"));
  }

  TEST_CASE("a key that is a list, a mapping or null is refused by name, not as invalid YAML") {
    // Valid YAML, but such a key names nothing: it used to end in "not valid YAML: bad conversion".
    const std::string a = "  A: { port: 1, peer_port: 2 }\n";
    CHECK(refused(with_servers("  [A, B]: { port: 1, peer_port: 2 }\n")) ==
          "test.yaml: servers: a key must be a name, got a list (line 2)");
    CHECK(refused(with_servers("  ~: { port: 1, peer_port: 2 }\n")) ==
          "test.yaml: servers: a key must be a name, got null (line 2)");
    CHECK(refused(with_servers(a) + "? [threads]\n: 1\n") == "test.yaml: (top level): a key must be a name, got a list (line 3)");
    CHECK(refused(with_servers("  A: { port: 1, peer_port: 2, {x: 1}: 3 }\n")) ==
          "test.yaml: servers.A: a key must be a name, got a mapping (line 2)");
    CHECK(refused("limits:\n  ? [max_line]\n  : 100\n" + with_servers(a)) ==
          "test.yaml: limits: a key must be a name, got a list (line 2)");
  }

  TEST_CASE("a key given twice is refused, in any mapping, with both lines named") {
    // yaml-cpp would read the first copy and PyYAML (the reference server, tools/) the last.
    const std::string a = "  A: { port: 1, peer_port: 2 }\n";
    CHECK(refused("threads: 1\n" + with_servers(a) + "threads: 300\n") ==
          "test.yaml: threads: given twice (lines 1 and 4); remove one");
    CHECK(contains(refused("log_level: io\nlog_level: bogus\n" + with_servers(a)), "log_level: given twice (lines 1 and 2)"));
    CHECK(contains(refused(with_servers(a) + with_servers("  A: { port: 3, peer_port: 4 }\n")), "servers: given twice"));
    CHECK(contains(refused(with_servers("  A: { port: 1, peer_port: 2, port: 5 }\n")), "servers.A.port: given twice"));
    CHECK(contains(refused(with_servers(a + "  A: { port: 3, peer_port: 4 }\n")), "servers.A: given twice (lines 2 and 3)"));
    CHECK(contains(refused("limits:\n  max_line: 100\n  max_line: 200\n" + with_servers(a)), "limits.max_line: given twice"));
    CHECK(contains(refused("places:\n  provider: offline\n  provider: google\n" + with_servers(a)),
                   "places.provider: given twice"));
    // The same key in two different mappings is fine.
    CHECK(parse(with_servers(a + "  B: { port: 3, peer_port: 4 }\n")).config.has_value());
  }

  TEST_CASE("the hardening limits: defaults, every key read, ranges enforced") {
    const std::string one = with_servers("  A: { port: 1, peer_port: 2 }\n");
    Parsed d = parse(one);
    REQUIRE(d.config);
    const herd::Limits& l = d.config->limits;
    CHECK(l.max_clients == 4000000);
    CHECK(l.max_table_bytes == size_t{1} << 30);
    CHECK(l.max_id_bytes == 1024);
    CHECK(l.max_clock_skew == 86400);
    CHECK(l.max_buffered_bytes == size_t{256} << 20);
    CHECK(l.line_timeout_ms == 10000);
    CHECK(l.idle_timeout_ms == 0);
    CHECK(l.write_timeout_ms == 30000);
    CHECK(l.peer_hello_timeout_ms == 5000);
    CHECK(l.peer_timeout_ms == 60000);
    Parsed p = parse("limits: { max_clients: 10, max_table_bytes: 2000000, max_id_bytes: 5, max_clock_skew: 0,\n"
                     "  max_buffered_bytes: 3000000, line_timeout_ms: 1, idle_timeout_ms: 2,\n"
                     "  write_timeout_ms: 3, peer_hello_timeout_ms: 4, peer_timeout_ms: 2500 }\n" + one);
    REQUIRE(p.config);
    for (const auto& w : p.warnings) CHECK_FALSE(contains(w, "unknown key"));
    const herd::Limits& m = p.config->limits;
    CHECK(m.max_clients == 10);
    CHECK(m.max_table_bytes == 2000000);
    CHECK(m.max_id_bytes == 5);
    CHECK(m.max_clock_skew == 0);
    CHECK(m.max_buffered_bytes == 3000000);
    CHECK(m.line_timeout_ms == 1);
    CHECK(m.idle_timeout_ms == 2);
    CHECK(m.write_timeout_ms == 3);
    CHECK(m.peer_hello_timeout_ms == 4);
    CHECK(m.peer_timeout_ms == 2500);
    CHECK(contains(refused("limits: { max_clients: 0 }\n" + one), "limits.max_clients"));
    CHECK(contains(refused("limits: { max_clock_skew: -1 }\n" + one), "limits.max_clock_skew"));
    CHECK(contains(refused("limits: { max_id_bytes: 0 }\n" + one), "limits.max_id_bytes"));
    CHECK(contains(refused("limits: { peer_hello_timeout_ms: 0 }\n" + one), "limits.peer_hello_timeout_ms"));
    CHECK(contains(refused("limits: { peer_timeout_ms: 999 }\n" + one), "limits.peer_timeout_ms"));
    CHECK(contains(refused("limits: { max_buffered_bytes: 10 }\n" + one), "limits.max_buffered_bytes"));
  }

  TEST_CASE("the ends of each documented range are accepted, not refused") {
    // README: "Every number is an integer within a range": both ends are in it.
    Parsed p = parse("threads: 256\nlog_keep: 1000\nlog_max_bytes: 4096\n"
                     "peer_backoff: { initial_ms: 700, max_ms: 700 }\n" +
                     with_servers("  A: { port: 65535, peer_port: 1 }\n"));
    REQUIRE_MESSAGE(p.config.has_value(), p.error);
    CHECK(p.config->threads == 256);
    CHECK(p.config->log_keep == 1000);
    CHECK(p.config->log_max_bytes == 4096);  // "0 or at least 4096"
    CHECK(p.config->peer_backoff_initial_ms == 700);  // "max_ms must be at least initial_ms"
    CHECK(p.config->peer_backoff_max_ms == 700);
    CHECK(p.config->find("A")->port == 65535);
    CHECK(contains(refused("threads: 257\n" + with_servers("  A: { port: 1, peer_port: 2 }\n")), "threads"));
    CHECK(contains(refused("log_max_bytes: 4095\n" + with_servers("  A: { port: 1, peer_port: 2 }\n")), "log_max_bytes"));
    // A server name is its log file's name, <name>.log: at most 255 - 4 bytes.
    const std::string longest(251, 'n');
    Parsed named = parse(with_servers("  " + longest + ": { port: 1, peer_port: 2 }\n"));
    REQUIRE_MESSAGE(named.config.has_value(), named.error);
    CHECK(named.config->servers[0].name == longest);
    CHECK(contains(refused(with_servers("  " + longest + "n: { port: 1, peer_port: 2 }\n")), "at most 251 bytes"));
  }

  TEST_CASE("the same port on two hosts is fine; unknown keys and lonely servers only warn") {
    Parsed p = parse("colour: blue\n" + with_servers("  A: { host: 127.0.0.1, port: 1, peer_port: 2, speed: 9 }\n"
                                                     "  B: { host: 127.0.0.2, port: 1, peer_port: 2 }\n"));
    REQUIRE(p.config.has_value());
    bool colour = false, speed = false, lonely = false;
    for (const auto& w : p.warnings) {
      colour = colour || contains(w, "colour: unknown key");
      speed = speed || contains(w, "servers.A.speed: unknown key");
      lonely = lonely || contains(w, "servers.B: has no links");
    }
    CHECK(colour);
    CHECK(speed);
    CHECK(lonely);
  }

  TEST_CASE("relative paths are taken from the config file's directory") {
    herd::Config c;
    c.base_dir = "/etc/herd";
    CHECK(c.resolve_path("logs") == "/etc/herd/logs");
    CHECK(c.resolve_path("/var/log/herd") == "/var/log/herd");
  }

  TEST_CASE("a missing file is named") {
    std::string error;
    std::vector<std::string> warnings;
    CHECK_FALSE(herd::load_config("/nonexistent/herd.yaml", &error, &warnings).has_value());
    CHECK(contains(error, "/nonexistent/herd.yaml"));
  }

  TEST_CASE("an endless file is refused after kMaxConfigBytes, not read into all of memory") {
    std::string error;
    std::vector<std::string> warnings;
    CHECK_FALSE(herd::load_config("/dev/zero", &error, &warnings).has_value());
    CHECK(error == "/dev/zero: the config file is larger than 4 MiB; is it the right file?");
  }

  TEST_CASE("places: the google settings, their defaults, and what is refused") {
    const std::string one = with_servers("  A: { port: 1, peer_port: 2 }\n");
    Parsed d = parse(one);
    REQUIRE(d.config);
    CHECK(d.config->places.key_env == "GOOGLE_API_KEY");
    CHECK(d.config->places.endpoint.empty());
    CHECK(d.config->places.ca_file.empty());
    CHECK(d.config->places.timeout_ms == 10000);
    CHECK(d.config->places.max_inflight == 256);
    CHECK(d.config->places.default_endpoint() == "https://maps.googleapis.com");
    Parsed g = parse("places:\n  provider: google-new\n  key_env: MY_KEY\n  endpoint: https://127.0.0.1:8443\n"
                     "  ca_file: certs/ca.pem\n  timeout_ms: 2500\n  max_inflight: 8\n" + one);
    REQUIRE(g.config);
    for (const auto& w : g.warnings) CHECK_FALSE(contains(w, "places"));
    const herd::PlacesConfig& pc = g.config->places;
    CHECK(pc.provider == "google-new");
    CHECK(pc.default_endpoint() == "https://places.googleapis.com");
    CHECK(pc.key_env == "MY_KEY");
    CHECK(pc.endpoint == "https://127.0.0.1:8443");
    CHECK(pc.ca_file == "certs/ca.pem");
    CHECK(pc.timeout_ms == 2500);
    CHECK(pc.max_inflight == 8);
    Parsed empty_ca = parse("places:\n  provider: google\n  ca_file: \"\"\n" + one);
    REQUIRE(empty_ca.config);
    CHECK(empty_ca.config->places.ca_file.empty());
    std::string bad_url = refused("places:\n  endpoint: ftp://maps.example\n" + one);
    CHECK(contains(bad_url, "places.endpoint"));
    CHECK(contains(bad_url, "'ftp://maps.example'"));
    CHECK(contains(refused("places:\n  endpoint: https://host:99999\n" + one), "places.endpoint"));
    CHECK(contains(refused("places:\n  key_env: \"MY KEY\"\n" + one), "places.key_env"));
    CHECK(contains(refused("places:\n  timeout_ms: 0\n" + one), "places.timeout_ms"));
    CHECK(contains(refused("places:\n  max_inflight: none\n" + one), "'none'"));
  }
}

TEST_CASE("config: peer lines may carry the longest record a client line can produce") {
  Parsed p = parse(kHerd);
  REQUIRE(p.config);
  const herd::Config& c = *p.config;
  // The worst record: an IAMAT line of max_line bytes with single spaces becomes
  // "AT <longest name> <diff of 29 bytes> <id> <location> <time>", then " seen=" and every name.
  const size_t fields = c.limits.max_line - std::string("IAMAT ").size();
  const size_t record = std::string("AT Goloman ").size() + std::string("-999999999999999999.999999999 ").size() + fields;
  const size_t seen = std::string(" seen=Goloman,Hands,Welsh").size();
  CHECK(c.peer_max_line() >= record + seen);
  // ... and not much more: the bound is a bound, not a way around the line limit.
  CHECK(c.peer_max_line() <= c.limits.max_line + 128);
}

TEST_CASE("config: table_records is packed unless plain is asked for") {
  Parsed p = parse(kHerd);
  REQUIRE(p.config);
  CHECK(p.config->packed_records);
  p = parse(std::string(kHerd) + "table_records: plain\n");
  REQUIRE(p.config);
  CHECK_FALSE(p.config->packed_records);
  p = parse(std::string(kHerd) + "table_records: packed\n");
  REQUIRE(p.config);
  CHECK(p.config->packed_records);
  const std::string why = refused(std::string(kHerd) + "table_records: zipped\n");
  CHECK(contains(why, "table_records"));
  CHECK(contains(why, "'zipped'"));
  CHECK(contains(why, "expected packed or plain"));
}

TEST_CASE("config: accept is exclusive or reuseport, anything else refused by name") {
  Parsed p = parse(kHerd);
  REQUIRE(p.config);
  CHECK(p.config->accept == herd::AcceptMode::kExclusive);
  p = parse(std::string(kHerd) + "accept: reuseport\n");
  REQUIRE(p.config);
  CHECK(p.config->accept == herd::AcceptMode::kReusePort);
  CHECK(p.warnings.empty());
  p = parse(std::string(kHerd) + "accept: exclusive\n");
  REQUIRE(p.config);
  CHECK(p.config->accept == herd::AcceptMode::kExclusive);
  CHECK(std::string(herd::accept_mode_name(herd::AcceptMode::kReusePort)) == "reuseport");
  CHECK(std::string(herd::accept_mode_name(herd::AcceptMode::kExclusive)) == "exclusive");

  const std::string bad = refused(std::string(kHerd) + "accept: SO_REUSEPORT\n");
  CHECK(contains(bad, "accept: expected one of exclusive, reuseport, got 'SO_REUSEPORT'"));
  CHECK(contains(refused(std::string(kHerd) + "accept: Reuseport\n"), "'Reuseport'"));  // case matters
  CHECK(contains(refused(std::string(kHerd) + "accept: \"\"\n"), "accept: expected a non-empty string"));
  CHECK(contains(refused(std::string(kHerd) + "accept: [reuseport]\n"), "accept: expected a non-empty string, got a list"));
}

TEST_CASE("config: data_dir, fsync, compact_bytes and the backlog's size") {
  Parsed p = parse(kHerd);
  REQUIRE(p.config);
  CHECK(p.config->data_dir.empty());  // memory only by default
  CHECK(p.config->fsync == "everysec");
  CHECK(p.config->compact_bytes == 64u * 1024 * 1024);
  CHECK(p.config->limits.peer_backlog_bytes == 16u * 1024 * 1024);

  p = parse(std::string(kHerd) + "data_dir: state\nfsync: always\ncompact_bytes: 100000\n"
                                 "limits:\n  peer_backlog_bytes: 1048576\n");
  REQUIRE(p.config);
  CHECK(p.config->data_dir == "state");
  CHECK(p.config->fsync == "always");
  CHECK(p.config->compact_bytes == 100000u);
  CHECK(p.config->limits.peer_backlog_bytes == 1048576u);
  CHECK(p.warnings.empty());

  CHECK(contains(refused(std::string(kHerd) + "fsync: sometimes\n"), "fsync"));
  CHECK(contains(refused(std::string(kHerd) + "fsync: sometimes\n"), "'sometimes'"));
  CHECK(contains(refused(std::string(kHerd) + "compact_bytes: 10\n"), "compact_bytes"));
  CHECK(contains(refused(std::string(kHerd) + "data_dir: \"\"\n"), "data_dir"));

  // Without a data_dir, fsync means nothing: a warning, not an error.
  p = parse(std::string(kHerd) + "fsync: always\n");
  REQUIRE(p.config);
  REQUIRE(p.warnings.size() == 1);
  CHECK(contains(p.warnings[0], "without data_dir"));

  // The backlog's old name is still read, with a warning.
  p = parse(std::string(kHerd) + "limits:\n  peer_outbox_bytes: 65536\n");
  REQUIRE(p.config);
  CHECK(p.config->limits.peer_backlog_bytes == 65536u);
  REQUIRE(p.warnings.size() == 1);
  CHECK(contains(p.warnings[0], "renamed limits.peer_backlog_bytes"));
  // Beside the new name it is ignored (and said so), and its value is still checked.
  p = parse(std::string(kHerd) + "limits:\n  peer_outbox_bytes: 65536\n  peer_backlog_bytes: 131072\n");
  REQUIRE(p.config);
  CHECK(p.config->limits.peer_backlog_bytes == 131072u);
  REQUIRE(p.warnings.size() == 1);
  CHECK(contains(p.warnings[0], "which is also given; ignored"));
  CHECK(contains(refused(std::string(kHerd) + "limits:\n  peer_outbox_bytes: abc\n  peer_backlog_bytes: 131072\n"),
                 "limits.peer_outbox_bytes: expected an integer"));
}
