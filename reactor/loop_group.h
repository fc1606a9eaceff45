// LoopGroup: N EventLoops (at least one: a count below 1 makes one), each driven by its own thread.
// It has no default count; the server's (one per core unless `threads` says) is Config::loop_count.
//
// Threads: construct, start() and stop() from one controlling thread; loop(i) from any thread.
#pragma once

#include <memory>
#include <thread>
#include <vector>

#include "reactor/event_loop.h"

namespace reactor {

class LoopGroup {
 public:
  explicit LoopGroup(int count);
  ~LoopGroup();

  int size() const { return static_cast<int>(loops_.size()); }
  EventLoop& loop(int i) { return *loops_[i]; }

  // Starts one thread per loop. Signals should be blocked in the caller first: the threads inherit
  // its mask.
  void start();
  // Stops every loop and joins its thread. Idempotent.
  void stop();

 private:
  std::vector<std::unique_ptr<EventLoop>> loops_;
  std::vector<std::thread> threads_;
};

}  // namespace reactor
