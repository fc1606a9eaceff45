// Resolver: host name lookups (getaddrinfo) on one worker thread, so that no event loop ever
// blocks on DNS. The answer is handed back to the asking loop through EventLoop::queue. The worker
// starts at the first lookup: numeric addresses never need one (callers skip the resolver for
// them), so a herd talking to 127.0.0.1 runs no extra thread.
//
// Threads: resolve() and forget() from any thread; the done callback runs on the loop given to
// resolve(). The destructor waits for a lookup in progress (getaddrinfo cannot be interrupted) and
// drops the queued ones; their callbacks never run.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "reactor/event_loop.h"
#include "reactor/socket.h"

namespace http {

class Resolver {
 public:
  using Addresses = std::vector<reactor::SocketAddress>;
  // On success `error` is empty and `addresses` non-empty (IPv4 and IPv6, in getaddrinfo's order).
  using Done = std::function<void(Addresses addresses, std::string error)>;

  // Lookups waiting for the worker; beyond this resolve() answers at once with an error.
  static constexpr size_t kMaxQueued = 256;

  Resolver() = default;
  ~Resolver();
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;

  // Any thread: looks up `host` (a DNS name) for TCP port `port`; `done` is queued on `loop` with
  // the answer. The loop must stay alive until the answer is queued, or until forget(loop).
  void resolve(reactor::EventLoop& loop, std::string host, uint16_t port, Done done);

  // Any thread: no answer will be queued on `loop` after this returns (its queued lookups are
  // dropped and a lookup in progress for it is abandoned). Call it before the loop goes away.
  void forget(reactor::EventLoop& loop);

 private:
  struct Job {
    reactor::EventLoop* loop;
    std::string host;
    uint16_t port;
    Done done;
  };
  void run();

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> jobs_;                    // guarded by mu_
  reactor::EventLoop* busy_loop_ = nullptr;  // guarded by mu_: the loop of the lookup in progress
  bool stopping_ = false;                   // guarded by mu_
  std::thread worker_;                      // started by the first resolve()
};

// The address for a numeric IPv4 or IPv6 `host` and `port`, without any lookup; false when `host`
// is not numeric. Pure; thread-safe.
bool numeric_address(const std::string& host, uint16_t port, reactor::SocketAddress* out);

}  // namespace http
