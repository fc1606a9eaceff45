// Listener implementation.
#include "reactor/listener.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <utility>

namespace reactor {
namespace {
// How long a listener stays deaf after accept failed with a resource error (EMFILE, ENOBUFS...).
constexpr EventLoop::Millis kAcceptPause{100};

// A descriptor closed with its owner unless released first.
class OwnedFd {
 public:
  explicit OwnedFd(int fd) : fd_(fd) {}
  OwnedFd(OwnedFd&& other) noexcept : fd_(other.release()) {}
  OwnedFd& operator=(OwnedFd&&) = delete;
  ~OwnedFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};
}  // namespace

Listener::Listener(EventLoop& loop, int listen_fd, AcceptFn on_accept, ErrorFn on_error, Sharing sharing)
    : loop_(loop),
      fd_(listen_fd),
      on_accept_(std::move(on_accept)),
      on_error_(std::move(on_error)),
      sharing_(sharing) {}

Listener::~Listener() { unwatch(); }

void Listener::unwatch() {
  if (registered_) loop_.remove(fd_);
  registered_ = false;
  if (pause_timer_ != 0) loop_.cancel(pause_timer_);  // it would call start() on a stopped or dead listener
  pause_timer_ = 0;
}

void Listener::start() {
  loop_.assert_in_loop();
  if (stopped_) return;
  const uint32_t events = sharing_ == Sharing::kShared ? EPOLLIN | EPOLLEXCLUSIVE : EPOLLIN;
  if (!loop_.add(fd_, events, this)) {
    on_error_(errno);
    pause();  // try again shortly rather than never listen again
    return;
  }
  registered_ = true;
}

void Listener::stop() {
  loop_.assert_in_loop();
  stopped_ = true;
  unwatch();
}

void Listener::pause() {
  if (registered_) {
    loop_.remove(fd_);
    registered_ = false;
  }
  if (pause_timer_ != 0) return;
  pause_timer_ = loop_.run_after(kAcceptPause, [this] {
    pause_timer_ = 0;
    if (!registered_) start();
  });
}

void Listener::on_events(uint32_t) {
  if (stopped_) return;
  for (int i = 0; i < kMaxAcceptsPerWake; ++i) {
    SocketAddress peer;
    peer.length = sizeof peer.storage;
    int fd = ::accept4(fd_, reinterpret_cast<sockaddr*>(&peer.storage), &peer.length,
                       SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      set_nodelay(fd);
      on_accept_(fd, peer);
      continue;
    }
    int err = errno;
    if (err == EAGAIN || err == EWOULDBLOCK) return;
    if (err == EINTR || err == ECONNABORTED || err == EPROTO) continue;
    // Out of descriptors or memory: level-triggered epoll would spin, so stop listening briefly.
    on_error_(err);
    pause();
    return;
  }
}

void hand_over(EventLoop& loop, int fd, std::function<void(int fd)> adopt) {
  // Shared, because a queued task must be copyable (std::function); the last copy to go closes the fd
  // unless the task ran and gave it away. A guard on the stack owns the fd until the shared one does,
  // so running out of memory on the way closes it too.
  OwnedFd guard(fd);
  auto owned = std::make_shared<OwnedFd>(std::move(guard));
  loop.queue([owned, adopt = std::move(adopt)] { adopt(owned->release()); });
}

}  // namespace reactor
