// MemoryTrimmer: gives the memory a burst leaves behind back to the kernel.
//
// glibc keeps freed heap memory resident in its arenas: after a burst (a million records seeded and
// flooded, a client that queued megabytes of replies and then read them) the connection buffers
// are freed, yet the process keeps their pages. On the entry server of a seeded herd that is
// 40-50 MiB, a third of what the table of a million clients takes. malloc_trim(0) hands the free
// pages back, but it walks every arena under that arena's lock, so it must not run on a loop
// thread nor while the loops are busy allocating.
//
// So a thread of its own watches how much work the server does (commands answered, records received
// and sent to peers, connections accepted: Server::work_done) and trims once after a burst: when a
// busy spell has ended, the rate having fallen far below its peak and stayed there. TrimPolicy
// decides, MemoryTrimmer runs it. A server that never bursts never trims; one under steady load
// never trims either, so its loops do not fault the same pages back in over and over. (The
// connection buffers' byte count is not the signal: a seeding burst's leftovers are mostly log
// batches and flood output, and the buffers shrink as soon as they drain.)
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>

namespace herd {

// Called once at start-up, before any thread: with a single event loop the process keeps to one
// malloc arena (glibc's main one). malloc_trim returns the free pages inside every arena but the
// free top of the main arena's heap only, and a loop thread's own arena keeps tens of MiB there
// after a burst. With more loops each keeps its own arena, so that they never wait on each other's
// allocations. Returns whether the arenas were limited.
bool configure_allocator(int loops);

// When to trim, given the server's running total of work, one sample at a time. Not thread-safe
// (one sampler).
class TrimPolicy {
 public:
  // Trim once at least `burst` units of work were done since the last trim (or the start), and the
  // work per sample has then stayed at or below 1/kCalmDivisor of its peak for `calm_samples`
  // samples: the server is nearly idle. (An eighth was tried first: a herd under half of its
  // load then counted as calm, and the trim, which holds the arena's lock, stalled its loop.)
  static constexpr uint64_t kCalmDivisor = 64;
  TrimPolicy(uint64_t burst, int calm_samples) : burst_(burst), calm_samples_(calm_samples) {}
  // One sample of the running total; true: trim now (the count starts again from here).
  bool observe(uint64_t total);
  uint64_t peak_rate() const { return peak_rate_; }

 private:
  const uint64_t burst_;
  const int calm_samples_;
  bool first_ = true;
  uint64_t last_ = 0;       // the previous sample
  uint64_t since_ = 0;      // work since the last trim
  uint64_t peak_rate_ = 0;  // the most work between two samples since the last trim
  int calm_ = 0;            // samples in a row at or below the calm rate
};

class MemoryTrimmer {
 public:
  // The defaults: a burst of 100,000 commands or records, sampled every 100 ms, calm for a second.
  static constexpr uint64_t kBurst = 100000;
  static constexpr std::chrono::milliseconds kPeriod{100};
  static constexpr int kCalmSamples = 10;

  // Returns the bytes given back (for the counters); the default calls malloc_trim(0) and measures
  // the fall of the resident set around it.
  using TrimFn = std::function<uint64_t()>;
  // `work` (the running total of work done) is called on the trimmer's thread: it must be safe to
  // call from there.
  explicit MemoryTrimmer(std::function<uint64_t()> work, std::chrono::milliseconds period = kPeriod,
                         uint64_t burst = kBurst, int calm_samples = kCalmSamples, TrimFn trim = {});
  ~MemoryTrimmer();  // stops
  MemoryTrimmer(const MemoryTrimmer&) = delete;
  MemoryTrimmer& operator=(const MemoryTrimmer&) = delete;

  void start();  // starts the thread (once)
  void stop();   // stops and joins it; a trim in progress finishes first

  // Any thread.
  uint64_t trims() const { return trims_.load(std::memory_order_relaxed); }
  uint64_t released_bytes() const { return released_.load(std::memory_order_relaxed); }

  // malloc_trim(0); returns how far the resident set fell across it (0 when it did not).
  static uint64_t trim_heap();

 private:
  void run();

  std::function<uint64_t()> work_;
  const std::chrono::milliseconds period_;
  TrimPolicy policy_;
  TrimFn trim_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;  // guarded by mu_
  std::thread thread_;
  std::atomic<uint64_t> trims_{0};
  std::atomic<uint64_t> released_{0};
};

}  // namespace herd
