// herd-load: the herd's traffic generator. Parses flags, resolves targets, runs the workers (or
// propagation mode), shows live progress on a TTY, prints the final report and writes the
// --latency-out percentile files.
#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "tools/load/arg_parse.h"
#include "tools/load/herd_config.h"
#include "tools/load/options.h"
#include "tools/load/percentile_export.h"
#include "tools/load/propagation.h"
#include "tools/load/report.h"
#include "tools/load/worker.h"
#include "tools/load/workload.h"

using namespace herd_load;

namespace {

double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto sec = [](const timeval& tv) { return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6; };
  return sec(ru.ru_utime) + sec(ru.ru_stime);
}

// Fills options.targets from --config/--entry, and checks every host is an IPv4 or IPv6 literal.
void resolve_targets(Options* o) {
  if (!o->config_path.empty()) {
    HerdConfig config;
    std::string error;
    if (!load_herd_config(o->config_path, &config, &error)) usage_error(error);
    for (const auto& name : o->entries) {
      const ServerEntry* s = config.find(name);
      if (!s) usage_error("--entry " + name + " is not a server of " + o->config_path);
      o->targets.push_back({s->name, s->host, s->port});
    }
  }
  for (auto& t : o->targets) {
    if (t.host == "localhost") t.host = "127.0.0.1";
    SocketAddress a;
    if (!make_address(t.host, t.port, &a))
      usage_error("target host must be an IPv4 or IPv6 address such as 127.0.0.1 or [::1], got \"" + t.host +
                  "\"");
  }
}

// --latency-out: the whole distribution, and per command when both commands were measured.
bool write_latency_files(const Options& o, const Stats& s) {
  struct Out {
    std::string path;
    const Histogram* h;
    const char* what;
  };
  std::vector<Out> outs{{o.latency_out, &s.latency, "all measured replies"}};
  if (s.latency_iamat.count() > 0 && s.latency_whatsat.count() > 0) {
    outs.push_back({o.latency_out + ".iamat", &s.latency_iamat, "IAMAT replies"});
    outs.push_back({o.latency_out + ".whatsat", &s.latency_whatsat, "WHATSAT replies"});
  }
  for (const Out& out : outs) {
    std::string text = format_hgrm(*out.h, std::string("herd-load latency, ") + out.what +
                                               (o.rate > 0 ? ", from the intended send time" : ", from the send time"));
    FILE* f = std::fopen(out.path.c_str(), "w");
    bool ok = f != nullptr;
    if (ok) {
      ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
      ok = std::fclose(f) == 0 && ok;
    }
    if (!ok) {
      std::fprintf(stderr, "herd-load: %s: cannot write: %s\n", out.path.c_str(), std::strerror(errno));
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Options options = parse_options(argc, argv);
  if (options.propagation > 0) return run_propagation(options);
  resolve_targets(&options);

  Workload workload(options);
  RunState run;
  run.options = &options;
  run.workload = &workload;
  if (!options.ack_file.empty()) {
    run.ack_fd = ::open(options.ack_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (run.ack_fd < 0) {
      std::fprintf(stderr, "herd-load: %s: cannot open: %s\n", options.ack_file.c_str(), std::strerror(errno));
      return 2;
    }
  }
  if (!options.latency_out.empty()) {  // a file that cannot be written is an error now, not after the run
    FILE* f = std::fopen(options.latency_out.c_str(), "w");
    if (!f) {
      std::fprintf(stderr, "herd-load: %s: cannot open: %s\n", options.latency_out.c_str(), std::strerror(errno));
      return 2;
    }
    std::fclose(f);
  }
  if (options.seed) run.seeds_left.store(options.clients);
  else run.start_ns.store(monotonic_ns());

  // Connection g belongs to thread g % T; thread t gets its share of --requests.
  const int threads = options.threads;
  std::vector<std::unique_ptr<Worker>> workers;
  for (int t = 0; t < threads; ++t) {
    std::vector<int> mine;
    for (int g = t; g < options.connections; g += threads) mine.push_back(g);
    uint64_t quota = options.requests / static_cast<uint64_t>(threads) +
                     (static_cast<uint64_t>(t) < options.requests % static_cast<uint64_t>(threads) ? 1 : 0);
    workers.push_back(std::make_unique<Worker>(&run, t, mine, quota));
  }

  const double cpu0 = cpu_seconds();
  const int64_t wall0 = monotonic_ns();
  std::vector<std::thread> pool;
  for (auto& w : workers) pool.emplace_back([&w] { w->run(); });

  const bool tty = isatty(STDERR_FILENO);
  int64_t next_progress = wall0 + 1'000'000'000;
  uint64_t last_replies = 0;
  while (run.finished.load() < threads) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    int64_t now = monotonic_ns();
    if (tty && now >= next_progress) {
      uint64_t replies = 0, errors = 0;
      for (auto& w : workers) {
        replies += w->progress_replies_.load(std::memory_order_relaxed);
        errors += w->progress_errors_.load(std::memory_order_relaxed);
      }
      const char* phase = run.start_ns.load() == 0 ? "seeding" : "running";
      std::fprintf(stderr, "\r[%5.1f s] %s: %llu replies, %llu/s, %llu errors   ",
                   static_cast<double>(now - wall0) / 1e9, phase, static_cast<unsigned long long>(replies),
                   static_cast<unsigned long long>(replies - last_replies),
                   static_cast<unsigned long long>(errors));
      last_replies = replies;
      next_progress += 1'000'000'000;
    }
  }
  for (auto& t : pool) t.join();
  if (tty) std::fprintf(stderr, "\n");
  bool acks_written = true;
  if (run.ack_fd >= 0) {
    if (const int err = run.ack_errno.load()) {
      std::fprintf(stderr, "herd-load: %s: cannot write: %s (acknowledgements were lost)\n", options.ack_file.c_str(),
                   std::strerror(err));
      acks_written = false;
    }
    ::close(run.ack_fd);
  }

  RunResult result;
  result.cpu_seconds = cpu_seconds() - cpu0;
  result.wall_seconds = static_cast<double>(monotonic_ns() - wall0) / 1e9;
  result.stats.max_samples = static_cast<size_t>(options.show_errors);
  int64_t window_end = 0, window_start = 0;
  for (auto& w : workers) {
    result.stats.merge(w->stats());
    window_end = std::max(window_end, w->end_ns_);
    if (w->measure_start_ns() != 0) window_start = w->measure_start_ns();
  }
  if (window_start != 0 && window_end > window_start)
    result.measured_seconds = static_cast<double>(window_end - window_start) / 1e9;
  result.abort_reason = run.abort_reason;
  const bool written = options.latency_out.empty() || write_latency_files(options, result.stats);
  if (options.json) print_json_report(options, result);
  else print_text_report(options, result);
  if (!written || !acks_written) return 2;
  return result.abort_reason.empty() && result.stats.total_errors() == 0 ? 0 : 1;
}
