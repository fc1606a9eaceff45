// Backoff: capped exponential retry delays with jitter, for reconnecting to peers. Not thread-safe.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <random>

namespace reactor {

class Backoff {
 public:
  using Millis = std::chrono::milliseconds;

  // Delays start at `initial`, double per failure, and stop growing at `max`; each is then scaled by a
  // random factor in [1 - jitter, 1 + jitter] so that restarted peers do not retry in lock-step.
  Backoff(Millis initial, Millis max, double jitter = 0.2, uint64_t seed = std::random_device{}())
      : initial_(initial), max_(std::max(initial, max)), jitter_(jitter), rng_(seed) {}

  // The delay before the next attempt; each call counts one more failure.
  Millis next() {
    double base = static_cast<double>(initial_.count());
    for (int i = 0; i < failures_ && base < static_cast<double>(max_.count()); ++i) base *= 2;
    base = std::min(base, static_cast<double>(max_.count()));
    ++failures_;
    std::uniform_real_distribution<double> factor(1.0 - jitter_, 1.0 + jitter_);
    return Millis(static_cast<int64_t>(base * factor(rng_)));
  }
  void reset() { failures_ = 0; }
  int failures() const { return failures_; }

 private:
  Millis initial_;
  Millis max_;
  double jitter_;
  int failures_ = 0;
  std::mt19937_64 rng_;
};

}  // namespace reactor
