// Connector implementation: optional lookup, non-blocking connect, completion on EPOLLOUT, SO_ERROR for
// the verdict, a timer for the attempt's deadline.
#include "reactor/connector.h"

#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace reactor {

Connector::Connector(EventLoop& loop, SocketAddress addr, Backoff backoff, ConnectedFn on_connected,
                     FailedFn on_failed, EventLoop::Millis connect_timeout)
    : loop_(loop),
      addr_(addr),
      backoff_(backoff),
      on_connected_(std::move(on_connected)),
      on_failed_(std::move(on_failed)),
      connect_timeout_(connect_timeout) {}

Connector::Connector(EventLoop& loop, std::string host, uint16_t port, Backoff backoff,
                     ConnectedFn on_connected, FailedFn on_failed, EventLoop::Millis connect_timeout)
    : loop_(loop),
      host_(std::move(host)),
      port_(port),
      backoff_(backoff),
      on_connected_(std::move(on_connected)),
      on_failed_(std::move(on_failed)),
      connect_timeout_(connect_timeout) {}

Connector::~Connector() { stop(); }

void Connector::start() {
  loop_.assert_in_loop();
  stopped_ = false;
  attempt();
}

void Connector::retry() {
  loop_.assert_in_loop();
  if (stopped_ || timer_ != 0 || fd_ >= 0 || resolving_) return;
  schedule(backoff_.next());
}

void Connector::schedule(Backoff::Millis delay) {
  timer_ = loop_.run_after(delay, [this] {
    timer_ = 0;
    attempt();
  });
}

void Connector::stop() {
  stopped_ = true;
  ++generation_;
  resolving_ = false;
  if (timer_ != 0) {
    loop_.cancel(timer_);
    timer_ = 0;
  }
  abandon_socket();
}

void Connector::attempt() {
  if (stopped_ || fd_ >= 0 || resolving_) return;
  if (host_.empty()) {
    dial();
    return;
  }
  resolving_ = true;
  uint64_t generation = generation_;
  // The answer comes on this loop, never after this Connector (and its Resolver) is gone.
  resolver_.resolve(loop_, host_, port_, [this, generation](Resolver::Addresses addresses, std::string error) {
    if (generation != generation_) return;  // stopped (and maybe started again) meanwhile
    resolving_ = false;
    if (!error.empty()) {
      fail(error);
      return;
    }
    addr_ = addresses.front();
    dial();
  });
}

void Connector::dial() {
  std::string error;
  fd_ = connect_tcp(addr_, &error);
  if (fd_ < 0) {
    fail(error);
    return;
  }
  if (!loop_.add(fd_, EPOLLOUT, this)) {
    error = addr_.to_string() + ": cannot watch the socket: " + std::strerror(errno);
    ::close(fd_);
    fd_ = -1;
    fail(error);
    return;
  }
  if (connect_timeout_.count() > 0) {
    deadline_ = loop_.run_after(connect_timeout_, [this] {
      deadline_ = 0;
      if (fd_ < 0) return;
      abandon_socket();
      fail(addr_.to_string() + ": connect timed out after " + std::to_string(connect_timeout_.count()) + " ms");
    });
  }
}

void Connector::on_events(uint32_t) {
  if (fd_ < 0) return;
  int err = socket_error(fd_);
  if (err != 0) {
    abandon_socket();
    fail(addr_.to_string() + ": " + std::strerror(err));
    return;
  }
  if (connected_to_itself(fd_)) {
    // Nothing listens there, and the kernel gave this socket that very port: it met itself. Closed
    // with a reset, so that no TIME-WAIT holds the port when the listener comes.
    abandon_socket(true);
    fail(addr_.to_string() + ": connected to itself (nothing listens there, and the port is in the "
                             "kernel's ephemeral range, net.ipv4.ip_local_port_range)");
    return;
  }
  int fd = fd_;
  loop_.remove(fd_);
  fd_ = -1;
  if (deadline_ != 0) {
    loop_.cancel(deadline_);
    deadline_ = 0;
  }
  set_nodelay(fd);
  on_connected_(fd);
}

void Connector::fail(std::string_view error) {
  if (stopped_) return;
  auto delay = backoff_.next();
  on_failed_(error, delay);
  schedule(delay);
}

void Connector::abandon_socket(bool reset) {
  if (deadline_ != 0) {
    loop_.cancel(deadline_);
    deadline_ = 0;
  }
  if (fd_ < 0) return;
  loop_.remove(fd_);
  if (reset) {
    close_with_reset(fd_);
  } else {
    ::close(fd_);
  }
  fd_ = -1;
}

}  // namespace reactor
