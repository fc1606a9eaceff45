// Options: herd-load's command line, parsed and validated (bad flags exit 2 with a message).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace herd_load {

enum class Protocol { kHerd, kRedis, kNull };

// One server to send to; name is known only when it came from a config file.
struct Target {
  std::string name;
  std::string host;  // an IPv4 or IPv6 literal (no brackets)
  int port = 0;
};

struct Options {
  std::vector<Target> targets;       // from --target, or filled from --config/--entry
  std::string config_path;
  std::vector<std::string> entries;  // --entry NAME[,NAME...]
  Protocol protocol = Protocol::kHerd;
  int connections = 10;
  int pipeline = 1;
  double duration = 0;    // seconds; 0 = not given
  uint64_t requests = 0;  // 0 = not given
  double whatsat_ratio = 0;
  uint32_t clients = 1000;
  std::string radius = "10";  // sent verbatim
  int bound = 5;
  int threads = 1;
  double warmup = 0;
  double rate = 0;  // requests/s in total; 0 = closed loop
  double timeout = 5;
  bool seed = false;
  bool json = false;
  int propagation = 0;
  std::string redis_key = "herd";
  int show_errors = 5;
  std::string ack_file;  // --ack-file: every acknowledged IAMAT is appended here
  std::string latency_out;  // --latency-out: the measured latency distribution, .hgrm text
};

const char* protocol_name(Protocol p);

// Parses argv; prints usage and exits 0 on --help, exits 2 on any bad flag.
Options parse_options(int argc, char** argv);

// Prints the message and a hint to stderr, then exits 2.
[[noreturn]] void usage_error(const std::string& message);

}  // namespace herd_load
