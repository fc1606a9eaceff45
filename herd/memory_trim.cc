#include "herd/memory_trim.h"

#include <fcntl.h>
#include <malloc.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <utility>

#include "reactor/threads.h"

namespace herd {

bool TrimPolicy::observe(uint64_t total) {
  if (first_) {
    first_ = false;
    last_ = total;
    return false;
  }
  const uint64_t rate = total >= last_ ? total - last_ : 0;
  last_ = total;
  since_ += rate;
  if (rate > peak_rate_) peak_rate_ = rate;
  if (since_ < burst_ || rate > peak_rate_ / kCalmDivisor) {
    calm_ = 0;
    return false;
  }
  if (++calm_ < calm_samples_) return false;
  calm_ = 0;
  since_ = 0;
  peak_rate_ = 0;
  return true;
}

namespace {

// The resident set in bytes, from /proc/self/statm (second field, in pages); 0 when unreadable.
uint64_t resident_bytes() {
  int fd = ::open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[128];
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return 0;
  buf[n] = '\0';
  unsigned long long size = 0, resident = 0;
  if (std::sscanf(buf, "%llu %llu", &size, &resident) != 2) return 0;
  return static_cast<uint64_t>(resident) * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
}

}  // namespace

bool configure_allocator(int loops) {
  if (loops != 1) return false;
  return ::mallopt(M_ARENA_MAX, 1) == 1;
}

uint64_t MemoryTrimmer::trim_heap() {
  const uint64_t before = resident_bytes();
  ::malloc_trim(0);
  const uint64_t after = resident_bytes();
  return before > after ? before - after : 0;
}

MemoryTrimmer::MemoryTrimmer(std::function<uint64_t()> work, std::chrono::milliseconds period, uint64_t burst,
                             int calm_samples, TrimFn trim)
    : work_(std::move(work)),
      period_(period),
      policy_(burst, calm_samples),
      trim_(trim ? std::move(trim) : TrimFn(&MemoryTrimmer::trim_heap)) {}

MemoryTrimmer::~MemoryTrimmer() { stop(); }

void MemoryTrimmer::start() {
  if (thread_.joinable()) return;
  thread_ = reactor::start_thread("memory-trim", [this] { run(); });
}

void MemoryTrimmer::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void MemoryTrimmer::run() {
  // The first sample is the baseline: taken now, so that work done before the first period has
  // passed (a burst right after start-up) counts.
  policy_.observe(work_());
  std::unique_lock lock(mu_);
  while (!stopping_) {
    cv_.wait_for(lock, period_, [this] { return stopping_; });
    if (stopping_) break;
    lock.unlock();
    if (policy_.observe(work_())) {
      released_.fetch_add(trim_(), std::memory_order_relaxed);
      trims_.fetch_add(1, std::memory_order_relaxed);
    }
    lock.lock();
  }
}

}  // namespace herd
