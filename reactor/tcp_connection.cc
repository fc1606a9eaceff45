// TcpConnection implementation: level-triggered epoll, reads into a per-thread scratch area, writes
// tried first and buffered only when the kernel pushes back.
#include "reactor/tcp_connection.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>

#include "reactor/input.h"

namespace reactor {
namespace {

// One scratch read area per thread: connections keep only what their handler did not consume.
thread_local char t_scratch[Connection::kReadChunk];

// An emptied buffer gives its memory back: an idle connection holds no buffer memory, however much
// it once buffered (a long partial line, replies its client was slow to read). A connection that
// keeps ending its reads mid-line allocates again on the next one, one malloc per read at most.
constexpr size_t kKeepCapacity = 0;

}  // namespace

TcpConnection::TcpConnection(EventLoop& loop, int fd, ConnectionHandler& handler)
    : loop_(loop), fd_(fd), handler_(handler) {
  in_.account_to(loop.buffer_account());
  out_.account_to(loop.buffer_account());
}

TcpConnection::~TcpConnection() {
  if (fd_ >= 0) {
    if (registered_) loop_.remove(fd_);
    ::close(fd_);
  }
}

void TcpConnection::start() {
  loop_.assert_in_loop();
  interest_ = EPOLLIN;
  if (!loop_.add(fd_, interest_, this)) {
    fail_later(std::string("cannot watch the socket: ") + std::strerror(errno));
    return;
  }
  registered_ = true;
  // Deferred so that an owner sees it after start() returned, as it would for TLS.
  loop_.defer([this] {
    if (fd_ >= 0) handler_.on_established(*this);
  });
}

void TcpConnection::fail_later(std::string reason) {
  // Closing here would re-enter the handler in the middle of its own call: close at the end of
  // the iteration instead (the owner frees the connection only after on_closed).
  if (write_failed_) return;
  write_failed_ = true;
  close_reason_ = std::move(reason);
  loop_.defer([this] { close(close_reason_); });
}

void TcpConnection::on_events(uint32_t events) {
  if (fd_ < 0 || write_failed_) return;  // failed: closing at the end of this iteration
  // Memory runs out on behalf of this connection (its buffers, or its handler's work on its bytes):
  // this connection goes, not the process.
  try {
    handle_events(events);
  } catch (const std::bad_alloc&) {
    close("out of memory");
  }
}

void TcpConnection::handle_events(uint32_t events) {
  if (events & EPOLLERR) {
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len);
    close(err ? std::strerror(err) : "socket error");
    return;
  }
  if ((events & (EPOLLIN | EPOLLHUP)) && want_read_ && !eof_) {
    handle_read();
  } else if ((events & EPOLLHUP) && !(events & EPOLLOUT)) {
    // Both directions are shut and we are not reading: nothing more can happen on this socket.
    close("connection hung up");
    return;
  }
  if (fd_ >= 0 && (events & EPOLLOUT)) handle_write();
}

void TcpConnection::handle_read() {
  ssize_t n = ::read(fd_, t_scratch, read_size_);
  if (n > 0) {
    more_may_wait_ = static_cast<size_t>(n) == read_size_;
    offer_read(handler_, *this, in_, std::string_view(t_scratch, static_cast<size_t>(n)),
               [this] { return fd_ >= 0; }, kKeepCapacity);
    return;
  }
  if (n == 0) {
    eof_ = true;
    update_interest();
    handler_.on_eof(*this, in_.view());
    in_.clear();
    return;
  }
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
  close(std::strerror(errno));
}

void TcpConnection::dispatch_input() {
  size_t used = handler_.on_data(*this, in_.view());
  if (fd_ < 0) return;
  in_.consume(used);
  if (in_.empty() && in_.capacity() > kKeepCapacity) in_.release();
}

void TcpConnection::send(std::string_view bytes) {
  if (fd_ < 0 || write_failed_ || bytes.empty()) return;
  if (!out_.empty()) {
    try {
      out_.append(bytes);
    } catch (const std::bad_alloc&) {
      fail_later("out of memory");
    }
    return;
  }
  ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
  if (n < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      fail_later(std::strerror(errno));
      return;
    }
    n = 0;
  }
  if (static_cast<size_t>(n) == bytes.size()) return;
  try {
    out_.append(bytes.substr(static_cast<size_t>(n)));
  } catch (const std::bad_alloc&) {
    fail_later("out of memory");
    return;
  }
  update_interest();
}

void TcpConnection::handle_write() {
  size_t want = std::min(out_.size(), kMaxWritePerEvent);
  ssize_t n = ::send(fd_, out_.data(), want, MSG_NOSIGNAL);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
    close(std::strerror(errno));
    return;
  }
  out_.consume(static_cast<size_t>(n));
  if (!out_.empty()) return;
  if (out_.capacity() > kKeepCapacity) out_.release();
  update_interest();
  if (close_when_flushed_) {
    end(close_reason_, true);
    return;
  }
  handler_.on_drained(*this);
}

void TcpConnection::set_reading(bool on) {
  if (fd_ < 0 || on == want_read_) return;
  want_read_ = on;
  update_interest();
  if (on) redispatch();
}

void TcpConnection::redispatch() {
  // Not "in_.empty()": from inside on_data the unconsumed bytes are only moved to in_ after it
  // returns, so the check belongs to the deferred call.
  if (fd_ < 0 || redispatch_queued_) return;
  redispatch_queued_ = true;
  loop_.defer([this] {
    redispatch_queued_ = false;
    if (fd_ < 0 || !want_read_ || in_.empty()) return;
    try {
      dispatch_input();
    } catch (const std::bad_alloc&) {
      close("out of memory");
    }
  });
}

void TcpConnection::close_when_flushed(std::string_view reason) {
  if (fd_ < 0) return;
  want_read_ = false;
  if (out_.empty() || write_failed_) {
    end(reason, !write_failed_);
    return;
  }
  close_when_flushed_ = true;
  close_reason_ = reason;
  update_interest();
}

void TcpConnection::close(std::string_view reason) { end(reason, false); }

void TcpConnection::end(std::string_view reason, bool flushed) {
  if (fd_ < 0) return;
  std::string why(reason);  // `reason` may point into this object
  if (registered_) loop_.remove(fd_);
  // After the peer's FIN nothing more can arrive, so nothing unread can turn the close into a reset.
  if (flushed && !eof_) {
    loop_.close_lingering(fd_);
  } else {
    ::close(fd_);
  }
  fd_ = -1;
  registered_ = false;
  out_.release();
  handler_.on_closed(*this, why);
}

void TcpConnection::update_interest() {
  if (!registered_) return;
  uint32_t want = 0;
  if (want_read_ && !eof_) want |= EPOLLIN;
  if (!out_.empty()) want |= EPOLLOUT;
  if (want == interest_ || write_failed_) return;
  if (!loop_.modify(fd_, want, this)) {
    fail_later(std::string("cannot watch the socket: ") + std::strerror(errno));
    return;
  }
  interest_ = want;
}

}  // namespace reactor
