// Resolver: host name lookups that never block an event loop. A numeric address (IPv4 or IPv6) is
// parsed at once; a name is looked up with getaddrinfo on a short-lived thread of its own and the
// answer is handed back to the loop. Used to look a peer up again before every redial, so that a
// neighbour that moved is found without a restart.
//
// Threads: construct, resolve() and destroy on the loop thread. Answers still on their way when the
// Resolver is destroyed are dropped (the lookup thread finishes on its own and touches nothing).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "reactor/event_loop.h"
#include "reactor/socket.h"

namespace reactor {

class Resolver {
 public:
  // `error` is empty when ok; it names the host otherwise.
  using DoneFn = std::function<void(bool ok, const SocketAddress& addr, const std::string& error)>;

  explicit Resolver(EventLoop& loop);
  ~Resolver();
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;

  // Looks `host`:`port` up; `done` runs later on the loop thread (never inside this call), unless
  // the Resolver is destroyed first.
  void resolve(const std::string& host, uint16_t port, DoneFn done);

 private:
  struct Mailbox;
  EventLoop& loop_;
  std::shared_ptr<Mailbox> mailbox_;
};

// True when `host` is a numeric IPv4 or IPv6 address (no lookup needed). Any thread.
bool is_numeric_host(const std::string& host);

}  // namespace reactor
