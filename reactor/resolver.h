// Resolver: host name lookups that never block an event loop. A numeric address (IPv4 or IPv6) is
// answered without a lookup; a name is looked up (getaddrinfo) on the resolver's one worker thread
// (named `resolver`), started at its first name, so a herd that names its hosts by address runs no
// extra thread. The answer is queued on the loop that asked. Each peer link's Connector has its own
// (so a slow lookup of one neighbour holds up no other) and looks its neighbour up again before every
// redial (a neighbour that moved is found without a restart); the HTTP client has one, used once per
// DNS TTL.
//
// Threads: resolve() and forget() from any thread; `done` runs on the loop given to resolve(), never
// inside the call. A `done` that is dropped (forgotten, or the Resolver gone) is destroyed outside the
// Resolver's lock, possibly on the worker thread: what it captures must not mind that thread. Destroying the Resolver never waits for a lookup in progress (getaddrinfo cannot be
// interrupted; the worker finishes it on its own and exits): lookups still queued are dropped, and
// answers already queued on a loop are not delivered, provided the Resolver is destroyed on that loop's
// thread or after the loop has stopped.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "reactor/event_loop.h"
#include "reactor/socket.h"

namespace reactor {

class Resolver {
 public:
  using Addresses = std::vector<SocketAddress>;
  // On success `error` is empty and `addresses` holds every address, in getaddrinfo's order; on
  // failure `addresses` is empty and `error` names the host.
  using Done = std::function<void(Addresses addresses, std::string error)>;

  // Lookups waiting for the worker; beyond this resolve() answers at once with an error.
  static constexpr size_t kMaxQueued = 256;

  Resolver();
  ~Resolver();
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;

  // Any thread: looks `host`:`port` up; `done` is queued on `loop` with the answer. The loop must stay
  // alive until the answer is delivered, or until forget(loop) or the Resolver's end.
  void resolve(EventLoop& loop, std::string host, uint16_t port, Done done);

  // Any thread: no answer is queued on `loop` after this returns (its queued lookups are dropped and a
  // lookup in progress for it is abandoned). Call it before the loop goes away.
  void forget(EventLoop& loop);

 private:
  struct State;
  std::shared_ptr<State> state_;  // shared with the worker, which may outlive the Resolver
};

// The address for a numeric IPv4 or IPv6 `host` and `port`, without any lookup; false when `host`
// is not numeric. Pure; any thread.
bool numeric_address(const std::string& host, uint16_t port, SocketAddress* out);

}  // namespace reactor
