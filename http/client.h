// HttpClient: an HTTP/1.1 client for one upstream (scheme, host, port from ClientOptions::endpoint),
// used from any number of event loops. Each loop gets its own LoopPool (requests in progress and a
// small pool of kept-alive connections), so a request, its connection, its timers and its answer
// all stay on the loop that sent it, and steady traffic reuses connections instead of opening new
// ones. Name lookups go to a resolver thread; numeric addresses need none. No call ever blocks a loop.
//
// Threads: send() and stop_loop() on the loop thread they name; the counters from any thread.
// Lifetime: call stop_loop(loop) on every loop that sent requests before that loop is destroyed
// (it closes the loop's connections and fails its requests); destroy the client after that, or
// after the loops stopped running.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "http/client_options.h"
#include "http/loop_pool.h"
#include "reactor/event_loop.h"
#include "reactor/resolver.h"

namespace http {

class HttpClient {
 public:
  using Done = std::function<void(Result)>;

  // With an https endpoint, options.tls must be set.
  explicit HttpClient(ClientOptions options);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Loop thread of `loop`: sends `request` (its target is appended to the endpoint's base path).
  // `done` runs exactly once on `loop`, never inside send(), within about `timeout` (connecting,
  // the TLS handshake and the whole response included): with a complete response of any status, or
  // with an error saying what failed (no address, refused, TLS, timeout, malformed response...).
  void send(reactor::EventLoop& loop, Request request, std::chrono::milliseconds timeout, Done done);

  // Loop thread of `loop`: fails the loop's requests in progress with "the HTTP client is
  // stopping" and closes its connections; later send() calls on `loop` fail the same way.
  void stop_loop(reactor::EventLoop& loop);

  const ClientOptions& options() const { return options_; }
  // Any thread.
  uint64_t requests() const { return counters_.requests.load(std::memory_order_relaxed); }
  uint64_t connections_opened() const { return counters_.connections_opened.load(std::memory_order_relaxed); }
  uint64_t reused() const { return counters_.reused.load(std::memory_order_relaxed); }

 private:
  LoopPool& pool_for(reactor::EventLoop& loop);

  const ClientOptions options_;
  ClientCounters counters_;
  reactor::Resolver resolver_;  // destroyed after the pools (declared before them)
  std::mutex mu_;
  std::unordered_map<reactor::EventLoop*, std::shared_ptr<LoopPool>> pools_;  // guarded by mu_
};

}  // namespace http
