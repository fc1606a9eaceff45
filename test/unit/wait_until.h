// wait_until: polls `pred` from the test thread until it holds or `limit` has passed; whether it held.
// For state another thread (a server's loops, a trimmer) brings about in its own time.
#pragma once

#include <chrono>
#include <thread>

namespace testing_wait {

template <typename Pred>
bool wait_until(Pred pred, std::chrono::milliseconds limit = std::chrono::seconds(20),
                std::chrono::milliseconds poll = std::chrono::milliseconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(poll);
  }
  return true;
}

}  // namespace testing_wait
