// Connector: dials one address from one EventLoop and keeps trying, with capped exponential backoff
// and jitter, until it connects or is stopped. After a connection it made is lost, retry() dials again.
//
// Threads: loop thread only. The owner keeps it alive until after stop().
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "reactor/backoff.h"
#include "reactor/event_loop.h"
#include "reactor/socket.h"

namespace reactor {

class Connector final : public Pollable {
 public:
  // Receives the connected, non-blocking socket (TCP_NODELAY set); the callee owns it.
  using ConnectedFn = std::function<void(int fd)>;
  // Told of each failed attempt and of the delay before the next one.
  using FailedFn = std::function<void(std::string_view error, Backoff::Millis retry_in)>;

  Connector(EventLoop& loop, SocketAddress addr, Backoff backoff, ConnectedFn on_connected,
            FailedFn on_failed);
  ~Connector();

  void start();  // dial now
  void retry();  // dial again after the next backoff delay (the connection made earlier was lost)
  void stop();   // no more attempts; an attempt in flight is abandoned
  // A connection that lived long enough proves the peer healthy: the next retry starts from the
  // initial delay again.
  void reset_backoff() { backoff_.reset(); }

  void on_events(uint32_t events) override;

 private:
  void attempt();
  void fail(std::string_view error);
  void schedule(Backoff::Millis delay);  // the next attempt, after `delay`
  void abandon_socket();

  EventLoop& loop_;
  SocketAddress addr_;
  Backoff backoff_;
  ConnectedFn on_connected_;
  FailedFn on_failed_;
  int fd_ = -1;
  EventLoop::TimerId timer_ = 0;
  bool stopped_ = false;
};

}  // namespace reactor
