// run_until: drives an EventLoop on the test's own thread until a condition holds or a deadline
// passes, for tests of loop-bound components (the HTTP client, the google providers).
#pragma once

#include <chrono>

#include "reactor/event_loop.h"

namespace testing_loop {

// Runs `loop` on this thread until `done()` or `limit`; returns whether done() became true.
template <typename Pred>
bool run_until(reactor::EventLoop& loop, Pred done, std::chrono::milliseconds limit = std::chrono::milliseconds(5000)) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  bool ok = false;
  reactor::EventLoop::TimerId id = 0;
  loop.queue([&] {
    id = loop.run_every(std::chrono::milliseconds(1), [&] {
      if (done()) {
        ok = true;
        loop.stop();
      } else if (std::chrono::steady_clock::now() > deadline) {
        loop.stop();
      }
    });
  });
  loop.run();
  loop.cancel(id);
  return ok;
}

// Runs `task` on the loop (this thread) and returns once it ran.
template <typename Task>
void run_on(reactor::EventLoop& loop, Task task) {
  bool ran = false;
  loop.queue([&] {
    task();
    ran = true;
  });
  run_until(loop, [&] { return ran; });
}

}  // namespace testing_loop
