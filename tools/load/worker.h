// Worker: one generator thread. It owns a subset of the connections in its own epoll loop,
// issues requests (closed loop, or open loop at fixed intervals), frames and checks every reply
// against its connection's FIFO, and keeps its own Stats. RunState is what the workers share.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tools/load/connection.h"
#include "tools/load/herd_reply.h"
#include "tools/load/options.h"
#include "tools/load/stats.h"
#include "tools/load/workload.h"

namespace herd_load {

int64_t monotonic_ns();

// Shared by all workers of a run.
struct RunState {
  const Options* options = nullptr;
  Workload* workload = nullptr;
  std::atomic<int64_t> seeds_left{0};  // seed requests not yet answered (or lost)
  std::atomic<int64_t> start_ns{0};    // traffic start (monotonic); 0 while seeding
  std::atomic<bool> abort{false};
  std::atomic<int> finished{0};        // workers that have returned
  std::string abort_reason;            // written once by the worker that sets abort first
  std::atomic<bool> abort_claimed{false};
  int ack_fd = -1;                     // --ack-file (O_APPEND: whole-line writes from any worker)
  std::atomic<int> ack_errno{0};       // the first failed write to ack_fd (acknowledgements lost)

  int64_t warmup_ns() const { return static_cast<int64_t>(options->warmup * 1e9); }
  int64_t duration_ns() const { return options->duration > 0 ? static_cast<int64_t>(options->duration * 1e9) : INT64_MAX / 4; }
};

class Worker {
 public:
  // `connections` are global connection indices this worker owns.
  Worker(RunState* run, int thread_index, const std::vector<int>& connections, uint64_t quota);
  ~Worker();

  void run();

  const Stats& stats() const { return stats_; }
  // Live figures for the progress line (read from another thread).
  std::atomic<uint64_t> progress_replies_{0};
  std::atomic<uint64_t> progress_errors_{0};
  int64_t end_ns_ = 0;  // when this worker stopped (monotonic)
  int64_t measure_start_ns() const { return measure_start_; }

 private:
  void start_connect(Connection* c, int64_t now);
  void on_connected(Connection* c, int64_t now);
  void on_event(Connection* c, uint32_t events, int64_t now);
  void read_replies(Connection* c, int64_t now);
  bool process_replies(Connection* c, int64_t now);  // false: the connection was dropped
  // Counts a checked reply (its error, if any, is already recorded).
  void account(const Pending& p, ErrorKind err, int64_t now, bool stale, size_t results, bool status_ok);
  void fill(Connection* c, int64_t now);
  void issue(Connection* c, int64_t intended, int64_t now, bool seed);
  bool take_quota(int64_t intended);
  void flush(Connection* c);
  void set_events(Connection* c, uint32_t events);
  void drop(Connection* c, ErrorKind why, const std::string& detail, int64_t now);
  void maintain(int64_t now);
  std::string describe(const Pending& p) const;
  // --ack-file: notes an IAMAT answered with its own record; write_acks() appends them to the file.
  void note_ack(std::string_view reply);
  void write_acks();

  RunState* run_;
  const Options& options_;
  Workload& workload_;
  int epfd_ = -1;
  std::vector<std::unique_ptr<Connection>> conns_;
  Stats stats_;
  uint64_t quota_;          // measured requests this worker may still issue (--requests)
  bool limited_ = false;    // --requests given
  int64_t start_ = 0;       // monotonic start of traffic, once known
  int64_t measure_start_ = 0;
  int64_t end_ = 0;
  int64_t interval_ns_ = 0;  // open loop: per-connection interval
  int64_t timeout_ns_;
  std::string acks_;  // acknowledged IAMATs not yet written to the ack file
  WhatsatMemo whatsat_memo_;  // herd WHATSAT bodies already judged good, by client
  int64_t last_reply_ = 0;
  int64_t in_flight_ = 0;
};

}  // namespace herd_load
