// Connector: dials one address from one EventLoop and keeps trying, with capped exponential backoff
// and jitter, until it connects or is stopped. After a connection it made is lost, retry() dials again.
// Every attempt has a deadline (a peer that never answers the SYN does not hold the dial forever);
// given a host name rather than an address, it looks the name up again before every attempt, off the
// loop thread (Resolver), so a neighbour whose address changed is found without a restart.
//
// Threads: loop thread only. The owner keeps it alive until after stop().
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "reactor/backoff.h"
#include "reactor/event_loop.h"
#include "reactor/resolver.h"
#include "reactor/socket.h"

namespace reactor {

class Connector final : public Pollable {
 public:
  // Receives the connected, non-blocking socket (TCP_NODELAY set); the callee owns it.
  using ConnectedFn = std::function<void(int fd)>;
  // Told of each failed attempt and of the delay before the next one.
  using FailedFn = std::function<void(std::string_view error, Backoff::Millis retry_in)>;

  // How long one attempt may take before it counts as failed.
  static constexpr EventLoop::Millis kDefaultConnectTimeout{5000};

  // Dials the fixed address `addr`.
  Connector(EventLoop& loop, SocketAddress addr, Backoff backoff, ConnectedFn on_connected,
            FailedFn on_failed, EventLoop::Millis connect_timeout = kDefaultConnectTimeout);
  // Dials `host`:`port`, resolving `host` before every attempt (at once when it is numeric).
  Connector(EventLoop& loop, std::string host, uint16_t port, Backoff backoff, ConnectedFn on_connected,
            FailedFn on_failed, EventLoop::Millis connect_timeout = kDefaultConnectTimeout);
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
  void dial();   // connect to addr_
  void fail(std::string_view error);
  void schedule(Backoff::Millis delay);  // the next attempt, after `delay`
  // Drops the attempt's socket (closed with a reset when `reset`: see close_with_reset) and deadline.
  void abandon_socket(bool reset = false);

  EventLoop& loop_;
  std::string host_;  // empty: addr_ is fixed
  uint16_t port_ = 0;
  SocketAddress addr_;
  Backoff backoff_;
  ConnectedFn on_connected_;
  FailedFn on_failed_;
  EventLoop::Millis connect_timeout_;
  Resolver resolver_;
  int fd_ = -1;
  EventLoop::TimerId timer_ = 0;     // the next attempt
  EventLoop::TimerId deadline_ = 0;  // the attempt in flight times out
  bool resolving_ = false;
  bool stopped_ = false;
  uint64_t generation_ = 0;  // bumped when an attempt is abandoned: a late lookup answer is ignored
};

}  // namespace reactor
