// Metrics: the server's counters, kept where they are counted so the hot path pays no contention.
// Each event loop owns one LoopMetrics (in its LoopContext) and is its only writer; a counter is a
// relaxed atomic that its writer bumps with a plain load and store (no locked instruction), so a
// scrape on any thread can read it while the loop runs. The scrape (render_metrics) sums the loops.
//
// Threads: Counter::add and LatencyHistogram::observe on the owning loop's thread only; reads from
// any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace herd {

class Server;

struct Counter {
  std::atomic<uint64_t> value{0};
  // Single writer: not a read-modify-write, so two writers would lose counts.
  void add(uint64_t n = 1) { value.store(value.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  uint64_t get() const { return value.load(std::memory_order_relaxed); }
};

// Command kinds and outcomes, as labelled in herd_commands_total{command, result}.
enum class CommandKind { kIamat, kWhatsat, kInvalid };
enum class CommandResult { kOk, kStale, kUnknownClient, kError };
constexpr size_t kCommandKinds = 3;
constexpr size_t kCommandResults = 4;
const char* command_label(CommandKind k);
const char* result_label(CommandResult r);

// Reply latency: from the read that brought the command to the reply being queued for writing.
struct LatencyHistogram {
  static constexpr size_t kBuckets = 14;
  static constexpr double kBounds[kBuckets] = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                               0.01,    0.025,  0.05,    0.1,   0.25,   0.5,    1.0};
  Counter buckets[kBuckets + 1];  // not cumulative; the last is over the largest bound
  Counter count;
  Counter sum_ns;
  void observe(std::chrono::nanoseconds d, uint64_t times = 1);
};

// The last few client locations one loop stored (for the dashboard's map). The loop adds; a request
// copies. The mutex is the loop's own: only a dashboard request ever contends for it. A busy loop
// stores tens of thousands of locations a second, and the map, polled each second, shows a few: the
// ring keeps the first kSize of each kWindowMs (by `unix_ms`) and passes over the rest without the
// lock and the copies. A quiet loop (fewer than kSize in a window) keeps every one.
class RecentLocations {
 public:
  static constexpr size_t kSize = 16;
  static constexpr int64_t kWindowMs = 100;
  static constexpr size_t kMaxIdBytes = 64;  // longer client IDs are cut (the map needs no more)
  struct Entry {
    std::string client;
    std::string origin;  // the server the client reported to
    double lat = 0, lng = 0;
    int64_t unix_ms = 0;
  };
  // The loop's thread. `unix_ms`: when the location was stored (the read's time).
  // `location`: as the client sent it (valid per protocol::parse_location).
  void add(std::string_view client, std::string_view origin, std::string_view location, int64_t unix_ms);
  void copy_to(std::vector<Entry>* out) const;

 private:
  int64_t window_ = -1;      // the loop's thread: the window of the latest add (unix_ms / kWindowMs)
  size_t taken_in_window_ = 0;  // the loop's thread: locations kept in that window
  mutable std::mutex mu_;
  Entry ring_[kSize];  // guarded by mu_
  size_t next_ = 0;    // guarded by mu_
  size_t count_ = 0;   // guarded by mu_
};

struct alignas(64) LoopMetrics {
  explicit LoopMetrics(size_t servers) : peer_received(new Counter[servers]) {}
  Counter commands[kCommandKinds][kCommandResults];
  LatencyHistogram latency;
  Counter client_accepted;  // client sessions begun on this loop (after any hand-off)
  Counter client_accepts;   // client connections this loop's listener took from the kernel
  Counter peer_accepted;
  Counter admin_requests;
  // AT records received on the peer port, by the sending server's index in Config::servers.
  std::unique_ptr<Counter[]> peer_received;
  RecentLocations recent;
  void command(CommandKind k, CommandResult r) { commands[static_cast<size_t>(k)][static_cast<size_t>(r)].add(); }
};

// Requests to the places upstream (google providers), counted from the provider's log callback:
// by outcome ("2xx", "4xx", "5xx", "other", "failed": no HTTP answer) and latency. One slot per log
// lane; each lane is written by one thread (its loop).
class UpstreamMetrics {
 public:
  static constexpr size_t kOutcomes = 5;
  static constexpr const char* kOutcomeLabels[kOutcomes] = {"2xx", "4xx", "5xx", "other", "failed"};
  explicit UpstreamMetrics(int lanes) : lanes_(new Lane[static_cast<size_t>(lanes)]), count_(lanes) {}
  // The lane's thread: reads one provider log entry; counts it when it reports an attempt's end
  // ("HTTP <status> in <ms> ms: ..." or "failed after <ms> ms: ...").
  void observe_log(int lane, std::string_view text);
  uint64_t count(size_t outcome) const;
  void latency(uint64_t* cumulative, uint64_t* total, uint64_t* sum_ms) const;

 private:
  struct alignas(64) Lane {
    Counter outcomes[kOutcomes];
    Counter buckets[LatencyHistogram::kBuckets + 1];
    Counter sum_ms;
  };
  std::unique_ptr<Lane[]> lanes_;
  int count_;
};

// The /metrics body (Prometheus text format 0.0.4) for `server`. Any thread while the server runs.
std::string render_metrics(Server& server);
// The dashboard's JSON (/v1/dashboard): this server, the herd's servers, links and admin URLs, this
// server's link states, command totals and recent locations. Any thread while the server runs.
std::string render_dashboard_json(Server& server);

}  // namespace herd
