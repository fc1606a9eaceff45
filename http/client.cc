// HttpClient implementation: one LoopPool per loop, found under a short lock.
#include "http/client.h"

namespace http {

HttpClient::HttpClient(ClientOptions options) : options_(std::move(options)) {}

HttpClient::~HttpClient() = default;

LoopPool& HttpClient::pool_for(reactor::EventLoop& loop) {
  std::lock_guard lock(mu_);
  auto& pool = pools_[&loop];
  if (!pool) pool = std::make_shared<LoopPool>(loop, options_, resolver_, counters_);
  return *pool;
}

void HttpClient::send(reactor::EventLoop& loop, Request request, std::chrono::milliseconds timeout, Done done) {
  loop.assert_in_loop();
  if (options_.endpoint.tls() && !options_.tls) {
    loop.defer([done = std::move(done)] { done(Result{"https endpoint without a TLS context", {}}); });
    return;
  }
  pool_for(loop).send(std::move(request), timeout, std::move(done));
}

void HttpClient::stop_loop(reactor::EventLoop& loop) {
  loop.assert_in_loop();
  resolver_.forget(loop);
  // The pool stays, stopped (its connections are freed at the end of this iteration), so that a
  // send() on this loop afterwards fails instead of opening connections nobody would close.
  pool_for(loop).stop("the HTTP client is stopping");
}

}  // namespace http
