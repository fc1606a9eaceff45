// Command-line parsing for herd-load: every flag, its checks, and the --help text.
#include "tools/load/options.h"

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "tools/load/arg_parse.h"

namespace herd_load {

namespace {

const char kUsage[] =
    "usage: herd-load [flags]\n"
    "Drives a herd (or redis, or herd-null) with IAMAT/WHATSAT traffic over loopback, checks\n"
    "every reply, and reports throughput, latency percentiles, errors by kind and its own CPU.\n"
    "\n"
    "Targets:\n"
    "  --target HOST:PORT      a server to load (repeatable; connections spread round-robin);\n"
    "                          HOST is an IPv4 or IPv6 literal, IPv6 in brackets: [::1]:12000\n"
    "  --config FILE           a herd config.yaml (servers and links) ...\n"
    "  --entry NAME[,NAME...]  ... and the servers of it to load (or the entry for --propagation)\n"
    "Protocol:\n"
    "  --protocol P            herd (default): IAMAT/WHATSAT, replies checked per SPEC.md;\n"
    "                          redis: GEOADD/GEOSEARCH inline commands to redis-server;\n"
    "                          null: IAMAT lines, any one line back per line sent\n"
    "  --redis-key KEY         the redis geo key (default herd)\n"
    "Workload:\n"
    "  --connections N         TCP connections in total (default 10)\n"
    "  --pipeline D            requests in flight per connection (default 1)\n"
    "  --duration T            measured time (default 10 s unless --requests is given); T is a\n"
    "                          number with a unit: 500ms, 30s, 2m, 1h; a bare number is seconds\n"
    "  --requests N            stop after N measured requests have been answered\n"
    "  --warmup T              traffic before measuring (default 0; units as --duration)\n"
    "  --rate R                open loop: R requests/s in total at fixed intervals, latency from\n"
    "                          each request's intended send time (default: closed loop)\n"
    "  --whatsat-ratio F       fraction of WHATSAT requests, 0..1 (default 0: all IAMAT)\n"
    "  --clients K             distinct client IDs c<k>.load (default 1000)\n"
    "  --radius KM             WHATSAT radius (default 10)\n"
    "  --bound N               WHATSAT bound (default 5; the herd accepts 1..20)\n"
    "  --seed                  first send one IAMAT per client and wait for all replies\n"
    "  --threads T             generator threads, each with its own epoll loop (default 1)\n"
    "  --timeout T             time to wait for each reply (default 5 s; units as --duration)\n"
    "Propagation:\n"
    "  --propagation N         N times: IAMAT a fresh client at the --entry server and poll every\n"
    "                          other server of --config with WHATSAT until it knows the client;\n"
    "                          report delays by hop distance (needs --config and one --entry)\n"
    "Output:\n"
    "  --json                  print one JSON object instead of the table\n"
    "  --ack-file FILE         append `<unix ns> <AT line>` for every IAMAT acknowledged with its\n"
    "                          own record (not a newer one) to FILE, as the replies come\n"
    "  --latency-out FILE      write the measured latency distribution to FILE in HdrHistogram's\n"
    "                          .hgrm percentile layout (Value Percentile TotalCount 1/(1-Percentile),\n"
    "                          values in ms), and per command to FILE.iamat / FILE.whatsat when\n"
    "                          both were sent\n"
    "  --show-errors N         offending replies to print (default 5)\n"
    "  --help                  this text\n";

bool parse_double(const char* s, double* out) {
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(s, &end);
  if (end == s || *end != '\0' || errno != 0 || !std::isfinite(v)) return false;
  *out = v;
  return true;
}

template <typename T>
bool parse_integer(const char* s, T* out) {
  auto [p, ec] = std::from_chars(s, s + std::strlen(s), *out);
  return ec == std::errc() && *p == '\0';
}

double need_double(std::string_view flag, const char* v, double lo, double hi) {
  double d = 0;
  if (!parse_double(v, &d) || d < lo || d > hi)
    usage_error(std::string(flag) + " needs a number in " + std::to_string(lo) + ".." +
                std::to_string(hi) + ", got \"" + v + "\"");
  return d;
}

template <typename T>
T need_integer(std::string_view flag, const char* v, T lo, T hi) {
  T x = 0;
  if (!parse_integer(v, &x) || x < lo || x > hi)
    usage_error(std::string(flag) + " needs an integer in " + std::to_string(lo) + ".." +
                std::to_string(hi) + ", got \"" + v + "\"");
  return x;
}

Target parse_target(const std::string& s) {
  Target t;
  std::string error = parse_host_port(s, &t.host, &t.port);
  if (!error.empty()) usage_error("--target: " + error);
  return t;
}

double need_duration(std::string_view flag, const std::string& v, double lo, double hi) {
  double d = 0;
  std::string error = parse_duration(v, &d);
  if (!error.empty()) usage_error(std::string(flag) + ": " + error);
  if (d < lo || d > hi)
    usage_error(std::string(flag) + " must be between " + std::to_string(lo) + " and " + std::to_string(hi) +
                " seconds, got \"" + v + "\"");
  return d;
}

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t comma = s.find(',', start);
    if (comma == std::string::npos) comma = s.size();
    if (comma > start) out.push_back(s.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

}  // namespace

const char* protocol_name(Protocol p) {
  switch (p) {
    case Protocol::kHerd: return "herd";
    case Protocol::kRedis: return "redis";
    case Protocol::kNull: return "null";
  }
  return "?";
}

void usage_error(const std::string& message) {
  std::fprintf(stderr, "herd-load: %s\n(see herd-load --help)\n", message.c_str());
  std::exit(2);
}

Options parse_options(int argc, char** argv) {
  Options o;
  bool duration_given = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string value;
    bool has_inline = false;
    if (arg.rfind("--", 0) == 0) {
      size_t eq = arg.find('=');
      if (eq != std::string::npos) {
        value = arg.substr(eq + 1);
        arg = arg.substr(0, eq);
        has_inline = true;
      }
    }
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    if (arg == "--seed" || arg == "--json") {
      if (has_inline) usage_error(arg + " takes no value");
      (arg == "--seed" ? o.seed : o.json) = true;
      continue;
    }
    static const char* const kValued[] = {
        "--target", "--config", "--entry", "--protocol", "--redis-key", "--connections",
        "--pipeline", "--duration", "--requests", "--warmup", "--rate", "--whatsat-ratio",
        "--clients", "--radius", "--bound", "--threads", "--timeout", "--propagation",
        "--show-errors", "--ack-file", "--latency-out"};
    bool known = false;
    for (const char* k : kValued) known = known || arg == k;
    if (!known) usage_error("unknown flag \"" + arg + "\"");
    if (!has_inline) {
      if (i + 1 >= argc) usage_error(arg + " needs a value");
      value = argv[++i];
    }
    const char* v = value.c_str();
    if (arg == "--target") {
      o.targets.push_back(parse_target(value));
    } else if (arg == "--config") {
      o.config_path = value;
    } else if (arg == "--entry") {
      o.entries = split_commas(value);
      if (o.entries.empty()) usage_error("--entry needs at least one server name");
    } else if (arg == "--protocol") {
      if (value == "herd") o.protocol = Protocol::kHerd;
      else if (value == "redis") o.protocol = Protocol::kRedis;
      else if (value == "null") o.protocol = Protocol::kNull;
      else usage_error("--protocol must be herd, redis or null, got \"" + value + "\"");
    } else if (arg == "--redis-key") {
      if (value.empty() || value.find_first_of(" \t\r\n") != std::string::npos)
        usage_error("--redis-key must be one word");
      o.redis_key = value;
    } else if (arg == "--connections") {
      o.connections = need_integer<int>(arg, v, 1, 100000);
    } else if (arg == "--pipeline") {
      o.pipeline = need_integer<int>(arg, v, 1, 100000);
    } else if (arg == "--duration") {
      o.duration = need_duration(arg, value, 0.001, 86400);
      duration_given = true;
    } else if (arg == "--requests") {
      o.requests = need_integer<uint64_t>(arg, v, 1, UINT64_MAX / 2);
    } else if (arg == "--warmup") {
      o.warmup = need_duration(arg, value, 0, 86400);
    } else if (arg == "--rate") {
      o.rate = need_double(arg, v, 0.001, 1e9);
    } else if (arg == "--whatsat-ratio") {
      o.whatsat_ratio = need_double(arg, v, 0, 1);
    } else if (arg == "--clients") {
      o.clients = need_integer<uint32_t>(arg, v, 1, 100000000);
    } else if (arg == "--radius") {
      double r = 0;
      if (!parse_double(v, &r) || r <= 0 || value.find_first_of(" \t\r\n") != std::string::npos)
        usage_error("--radius needs a positive number, got \"" + value + "\"");
      o.radius = value;
    } else if (arg == "--bound") {
      o.bound = need_integer<int>(arg, v, 1, 1000);
    } else if (arg == "--threads") {
      o.threads = need_integer<int>(arg, v, 1, 1024);
    } else if (arg == "--timeout") {
      o.timeout = need_duration(arg, value, 0.001, 3600);
    } else if (arg == "--propagation") {
      o.propagation = need_integer<int>(arg, v, 1, 10000000);
    } else if (arg == "--show-errors") {
      o.show_errors = need_integer<int>(arg, v, 0, 100000);
    } else if (arg == "--ack-file") {
      if (value.empty()) usage_error("--ack-file needs a file name");
      o.ack_file = value;
    } else if (arg == "--latency-out") {
      if (value.empty()) usage_error("--latency-out needs a file name");
      o.latency_out = value;
    }
  }
  if (!duration_given && o.requests == 0) o.duration = 10;
  if (o.propagation > 0) {
    if (o.config_path.empty() || o.entries.size() != 1)
      usage_error("--propagation needs --config FILE and exactly one --entry NAME");
    if (o.protocol != Protocol::kHerd) usage_error("--propagation works with --protocol herd only");
    return o;
  }
  if (!o.config_path.empty() && o.entries.empty()) usage_error("--config needs --entry NAME[,NAME...]");
  if (o.config_path.empty() && !o.entries.empty()) usage_error("--entry needs --config FILE");
  if (o.targets.empty() && o.config_path.empty()) usage_error("give --target HOST:PORT or --config FILE --entry NAME");
  if (o.threads > o.connections) o.threads = o.connections;
  if (o.protocol == Protocol::kNull && o.whatsat_ratio > 0)
    usage_error("--whatsat-ratio needs --protocol herd or redis");
  return o;
}

}  // namespace herd_load
