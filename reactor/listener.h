// Listener: accepts connections on a listening socket for one EventLoop. Either several loops each
// have a Listener on the same socket (kShared: registered with EPOLLEXCLUSIVE, so that one connection
// wakes one loop, not all of them), or each loop has a socket of its own (kOwn: e.g. one of a
// listen_tcp_reuseport group, where the kernel picks the socket, hence the loop, per connection).
// The Listener does not own the socket: whoever made it closes it, after the Listener is gone.
// hand_over (below) passes an accepted socket on to another loop.
//
// Threads: construct anywhere; start() and everything after on the loop thread. hand_over: any.
#pragma once

#include <functional>

#include "reactor/event_loop.h"
#include "reactor/socket.h"

namespace reactor {

class Listener final : public Pollable {
 public:
  // Called on the loop thread with each accepted socket (non-blocking, close-on-exec, TCP_NODELAY).
  // The callee owns the fd.
  using AcceptFn = std::function<void(int fd, const SocketAddress& peer)>;
  // Called when accept fails for a reason other than "nothing to accept" (e.g. out of descriptors);
  // the listener pauses for a moment rather than spinning.
  using ErrorFn = std::function<void(int err)>;

  // Connections accepted per wake-up, so one loop cannot take a whole burst from the others.
  static constexpr int kMaxAcceptsPerWake = 16;

  // Whether other loops listen on the same socket (see the top of this file).
  enum class Sharing { kShared, kOwn };

  Listener(EventLoop& loop, int listen_fd, AcceptFn on_accept, ErrorFn on_error,
           Sharing sharing = Sharing::kShared);
  ~Listener();  // loop thread (or after the loop stopped)
  void start();  // loop thread: listen (if the loop refuses the fd, the error is reported and retried)
  // Loop thread: stops listening for good, at once. Events of this turn already fetched for the
  // socket are ignored, so the listener can be freed at the end of the turn (EventLoop::defer), as
  // every Pollable must outlive the turn in which it was removed.
  void stop();
  void on_events(uint32_t events) override;

 private:
  EventLoop& loop_;
  int fd_;
  AcceptFn on_accept_;
  ErrorFn on_error_;
  Sharing sharing_;
  void pause();  // stops listening for a moment (kAcceptPause), then starts again
  void unwatch();  // leaves epoll and cancels a pending restart

  bool registered_ = false;
  bool stopped_ = false;
  EventLoop::TimerId pause_timer_ = 0;  // the restart after a pause, cancelled with the listener
};

// Any thread: hands the accepted socket `fd` to `loop`, where `adopt(fd)` runs as a queued task
// (EventLoop::queue) and owns the fd from then on. Until then the task owns it: a loop that stops
// before running the task, and is destroyed with it still queued, destroys it unrun, and that closes
// the fd (which a task holding the bare number would leak).
void hand_over(EventLoop& loop, int fd, std::function<void(int fd)> adopt);

}  // namespace reactor
