// LingeringClose implementation: shutdown(SHUT_WR), then reads thrown away until the peer's FIN.
#include "reactor/lingering_close.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <new>

#include "reactor/event_loop.h"

namespace reactor {
namespace {

thread_local char t_discard[16 * 1024];

// Reads and throws away what has arrived on `fd`, counting it in *discarded. True when the socket is
// finished with: the peer's FIN, an error (a reset included), or more than the bytes allowed.
bool drain(int fd, size_t* discarded) {
  for (;;) {
    const ssize_t n = ::recv(fd, t_discard, sizeof t_discard, 0);
    if (n > 0) {
      *discarded += static_cast<size_t>(n);
      if (*discarded > LingeringClose::kMaxDiscardBytes) return true;
      continue;
    }
    if (n == 0) return true;
    if (errno == EINTR) continue;
    return errno != EAGAIN && errno != EWOULDBLOCK;
  }
}

}  // namespace

struct LingeringClose::Socket final : Pollable {
  Socket(LingeringClose& o, int f) : owner(o), fd(f) {}
  void on_events(uint32_t) override {
    // Once finished, the fd's number may already be another socket's: never read it again.
    if (!finished && drain(fd, &discarded)) owner.finish(fd);
  }

  LingeringClose& owner;
  const int fd;
  bool finished = false;
  size_t discarded = 0;
  EventLoop::TimerId timer = 0;
};

LingeringClose::LingeringClose(EventLoop& loop) : loop_(loop) {}

LingeringClose::~LingeringClose() {
  for (auto& [fd, socket] : sockets_) ::close(fd);
}

void LingeringClose::close(int fd) {
  loop_.assert_in_loop();
  // shutdown fails only for a connection that is gone already (reset: ENOTCONN): nothing to keep.
  size_t discarded = 0;
  if (sockets_.size() >= kMaxSockets || ::shutdown(fd, SHUT_WR) != 0 || drain(fd, &discarded)) {
    ::close(fd);
    return;
  }
  bool registered = false;
  try {
    auto& socket = sockets_[fd];  // may throw, as may the rest: then closed now, as before
    socket = std::make_unique<Socket>(*this, fd);
    socket->discarded = discarded;
    registered = loop_.add(fd, EPOLLIN, socket.get());
    if (registered) {
      socket->timer = loop_.run_after(kMaxLinger, [this, fd] {
        // A last read first: what came since the last wake-up would make the close a reset, which
        // drops the reply's tail the kernel may still be sending; read, the close is a FIN.
        auto it = sockets_.find(fd);
        if (it != sockets_.end()) drain(fd, &it->second->discarded);
        finish(fd);
      });
      return;
    }
  } catch (const std::bad_alloc&) {
    if (registered) loop_.remove(fd);
  }
  sockets_.erase(fd);
  ::close(fd);
}

void LingeringClose::finish(int fd) {
  auto it = sockets_.find(fd);
  if (it == sockets_.end()) return;
  std::unique_ptr<Socket> socket = std::move(it->second);
  sockets_.erase(it);
  socket->finished = true;
  loop_.cancel(socket->timer);
  loop_.remove(fd);
  ::close(fd);
  // Events for it may still be in this iteration's batch: it goes at the end of the iteration.
  loop_.defer([s = socket.release()] { delete s; });
}

}  // namespace reactor
