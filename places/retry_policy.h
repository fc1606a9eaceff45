// RetryPolicy: when to try a failed upstream call again, as Google's own clients do (PLACES.md):
// jittered exponential backoff, about initial × factor^n before retry n+1, while the WHATSAT's
// budget lasts and at most max_attempts attempts in all. Which failures are retryable is the
// UpstreamApi's call (PlacesAnswer::retryable).
//
// A value; delay() is pure given the generator. Not thread-safe (the generator is the caller's).
#pragma once

#include <algorithm>
#include <chrono>
#include <random>

namespace places {

struct RetryPolicy {
  std::chrono::milliseconds initial{500};
  double factor = 1.5;
  double jitter = 0.25;  // each delay is scaled by a random factor in [1 - jitter, 1 + jitter]
  int max_attempts = 5;

  // The wait after failed attempt number `attempt` (1 for the first).
  template <typename Rng>
  std::chrono::milliseconds delay(int attempt, Rng& rng) const {
    double base = static_cast<double>(initial.count());
    for (int i = 1; i < attempt; ++i) base *= factor;
    std::uniform_real_distribution<double> scale(1.0 - jitter, 1.0 + jitter);
    return std::chrono::milliseconds(static_cast<long long>(std::max(1.0, base * scale(rng))));
  }
};

}  // namespace places
