// GooglePlaces: the `google` and `google-new` providers. WHATSAT queries become HTTPS requests to
// Google's Nearby Search (the flavour is an UpstreamApi), sent by an http::HttpClient on the loop
// that asked; the reply is the upstream's answer in the legacy shape and byte layout, cut to the
// client's bound, or an UNKNOWN_ERROR reply saying why there was no usable answer, always within
// the timeout. On the way:
// - identical requests in flight at the same moment on one loop share one upstream call (each
//   waiter gets the answer cut to its own bound);
// - at most max_inflight upstream calls at once per server (a shared counter); beyond it calls
//   wait in a FIFO per loop, max_queued in all, and past that are answered UNKNOWN_ERROR at once;
// - a call whose waiters have all left (PlacesProvider::Wanted) is dropped instead of being sent
//   when its slot comes or the queue is full, and is not retried;
// - retryable failures (PlacesAnswer::retryable) are tried again after a RetryPolicy delay while
//   the budget lasts; a call holds its slot from its first attempt to its answer;
// - every attempt, its status and latency go to the log callback (the key never does).
//
// Threads: nearby() and stop_loop() on the thread of the loop they name; any number of loops. The
// counters from any thread. Lifetime: stop_loop(loop) for every loop used before that loop is
// destroyed (after it, nearby() on that loop answers UNKNOWN_ERROR at once); then the provider may
// go.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "http/client.h"
#include "places/places_provider.h"
#include "places/retry_policy.h"
#include "places/upstream_api.h"

namespace places {

// The provider's log: `kind` is '>' a request sent, '<' an answer, '!' a failure, '*' a notice;
// called on the loop thread whose index is `loop_index`. Never given the API key.
using PlacesLog = std::function<void(int loop_index, char kind, std::string_view text)>;

struct GoogleOptions {
  std::string provider = "google";     // "google" (legacy Nearby Search) or "google-new"
  http::Url endpoint;                  // base URL
  std::string key;                     // the API key
  std::shared_ptr<const reactor::TlsContext> tls;  // for an https endpoint
  std::chrono::milliseconds timeout{10000};        // per WHATSAT, retries included
  size_t max_inflight = 256;           // upstream calls at once, per server
  size_t max_queued = 0;               // calls waiting for a slot, per server; 0: 4 × max_inflight
  size_t loops = 1;                    // event loops that call it (they share the idle connections out)
  RetryPolicy retry;
  PlacesLog log;                       // optional
};

class GooglePlaces final : public PlacesProvider {
 public:
  // Calls waiting for a slot, per slot, when GoogleOptions::max_queued is 0.
  static constexpr size_t kQueuedPerSlot = 4;
  // A call that would start with less of its budget left than this is answered at once instead.
  static constexpr std::chrono::milliseconds kMinAttempt{50};
  // Idle upstream connections each of `loops` loops keeps: its share of max_inflight, rounded up.
  static size_t idle_per_loop(size_t max_inflight, size_t loops) {
    loops = std::max<size_t>(loops, 1);
    return std::max<size_t>(1, (max_inflight + loops - 1) / loops);
  }

  explicit GooglePlaces(GoogleOptions options);
  ~GooglePlaces() override;

  void nearby(reactor::EventLoop& loop, const PlacesQuery& q, Done done, Wanted wanted = {}) override;
  void stop_loop(reactor::EventLoop& loop) override;

  // Any thread: counters since start.
  uint64_t upstream_calls() const { return calls_.load(std::memory_order_relaxed); }
  uint64_t upstream_attempts() const { return attempts_.load(std::memory_order_relaxed); }
  uint64_t coalesced() const { return coalesced_.load(std::memory_order_relaxed); }
  uint64_t refused() const { return refused_.load(std::memory_order_relaxed); }
  // Calls dropped before their upstream request because no one wanted their answer any more.
  uint64_t abandoned() const { return abandoned_.load(std::memory_order_relaxed); }
  const http::HttpClient& http() const { return *http_; }

 private:
  struct Call;
  struct LoopState;

  std::shared_ptr<LoopState> state_for(reactor::EventLoop& loop);
  bool try_acquire();
  // A slot is given back: this loop's queue first, then the loops that wait are woken.
  void release(LoopState& ls);
  // Starts this loop's queued calls while slots are free.
  void drain(LoopState& ls);
  // Queues a drain on every other loop with calls waiting (while any wait).
  void wake_others(LoopState& ls);
  void start_attempt(LoopState& ls, Call& call);
  void on_result(LoopState& ls, uint64_t call_id, http::Result result);
  void on_queue_timeout(LoopState& ls, uint64_t call_id);
  // Answers a call no one wants any more without an upstream request (its waiters are told why).
  void abandon(LoopState& ls, uint64_t call_id);
  // Abandons this loop's queued calls that no one wants any more.
  void drop_unwanted(LoopState& ls);
  void complete(LoopState& ls, uint64_t call_id, const PlacesAnswer& answer);
  PlacesAnswer slots_busy_answer() const;
  void log(reactor::EventLoop& loop, char kind, std::string_view text) const;

  const GoogleOptions options_;
  const size_t max_queued_;
  std::unique_ptr<UpstreamApi> api_;
  std::unique_ptr<http::HttpClient> http_;
  std::atomic<size_t> inflight_{0};  // slots held, all loops
  std::atomic<size_t> queued_{0};    // calls waiting, all loops
  std::atomic<uint64_t> calls_{0}, attempts_{0}, coalesced_{0}, refused_{0}, abandoned_{0};
  std::mutex mu_;
  std::unordered_map<reactor::EventLoop*, std::shared_ptr<LoopState>> loops_;  // guarded by mu_
};

}  // namespace places
