// Connector implementation: non-blocking connect, completion on EPOLLOUT, SO_ERROR for the verdict.
#include "reactor/connector.h"

#include <sys/epoll.h>
#include <unistd.h>

#include <cstring>

namespace reactor {

Connector::Connector(EventLoop& loop, SocketAddress addr, Backoff backoff, ConnectedFn on_connected,
                     FailedFn on_failed)
    : loop_(loop),
      addr_(addr),
      backoff_(backoff),
      on_connected_(std::move(on_connected)),
      on_failed_(std::move(on_failed)) {}

Connector::~Connector() { abandon_socket(); }

void Connector::start() {
  loop_.assert_in_loop();
  stopped_ = false;
  attempt();
}

void Connector::retry() {
  loop_.assert_in_loop();
  if (stopped_ || timer_ != 0 || fd_ >= 0) return;
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
  if (timer_ != 0) {
    loop_.cancel(timer_);
    timer_ = 0;
  }
  abandon_socket();
}

void Connector::attempt() {
  if (stopped_ || fd_ >= 0) return;
  std::string error;
  fd_ = connect_tcp(addr_, &error);
  if (fd_ < 0) {
    fail(error);
    return;
  }
  loop_.add(fd_, EPOLLOUT, this);
}

void Connector::on_events(uint32_t) {
  if (fd_ < 0) return;
  int err = socket_error(fd_);
  if (err != 0) {
    abandon_socket();
    fail(addr_.to_string() + ": " + std::strerror(err));
    return;
  }
  int fd = fd_;
  loop_.remove(fd_);
  fd_ = -1;
  set_nodelay(fd);
  on_connected_(fd);
}

void Connector::fail(std::string_view error) {
  if (stopped_) return;
  auto delay = backoff_.next();
  on_failed_(error, delay);
  schedule(delay);
}

void Connector::abandon_socket() {
  if (fd_ < 0) return;
  loop_.remove(fd_);
  ::close(fd_);
  fd_ = -1;
}

}  // namespace reactor
