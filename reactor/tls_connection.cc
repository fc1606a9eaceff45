// TlsConnection implementation: OpenSSL over a BIO of our own (reads from the socket, writes into the
// output buffer), level-triggered epoll, the handshake under a loop timer, and the "want read"/"want
// write" bookkeeping of both directions.
#include "reactor/tls_connection.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <new>

#include "reactor/input.h"
#include "reactor/socket.h"

namespace reactor {
namespace {

// One scratch read area per thread: connections keep only the plaintext their handler did not consume.
thread_local char t_scratch[Connection::kReadChunk];

// Buffers with more capacity than this are freed once empty, so one burst does not pin memory.
constexpr size_t kKeepCapacity = 64 * 1024;

// The most plaintext handed to one SSL_write call (it writes one record per call anyway).
constexpr size_t kMaxSslWrite = INT_MAX;

bool is_ip_literal(const std::string& name) {
  unsigned char buf[sizeof(in6_addr)];
  return ::inet_pton(AF_INET, name.c_str(), buf) == 1 || ::inet_pton(AF_INET6, name.c_str(), buf) == 1;
}

bool retryable(int err) { return err == EAGAIN || err == EWOULDBLOCK || err == EINTR; }

}  // namespace

// --- The BIO: its data pointer is the connection ---------------------------------------------------

int TlsConnection::bio_read(BIO* bio, char* data, int len) {
  auto* self = static_cast<TlsConnection*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  ssize_t n = ::read(self->fd_, data, static_cast<size_t>(len));
  if (n < 0 && retryable(errno)) BIO_set_retry_read(bio);
  // OpenSSL asks BIO_eof() to tell a clean end of stream (SSL_OP_IGNORE_UNEXPECTED_EOF) from an error.
  if (n == 0 && len > 0) {
    BIO_set_flags(bio, BIO_FLAGS_IN_EOF);
    self->transport_eof_ = true;
  }
  return static_cast<int>(n);
}

int TlsConnection::bio_write(BIO* bio, const char* data, int len) {
  auto* self = static_cast<TlsConnection*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  // No exception may unwind through OpenSSL's C frames: out of memory, the write fails, and so does
  // the OpenSSL call that made it (describe() names the cause).
  try {
    self->out_.append(std::string_view(data, static_cast<size_t>(len)));
  } catch (const std::bad_alloc&) {
    self->bio_out_of_memory_ = true;
    return -1;
  }
  return len;
}

long TlsConnection::bio_ctrl(BIO* bio, int cmd, long, void*) {
  switch (cmd) {
    case BIO_CTRL_FLUSH:
      return 1;  // the connection flushes out_ after every OpenSSL call
    case BIO_CTRL_EOF:
      return BIO_test_flags(bio, BIO_FLAGS_IN_EOF) != 0;
    default:
      return 0;
  }
}

const BIO_METHOD* TlsConnection::bio_method() {
  // Built once, thread-safely (function-local static), and kept for the process's lifetime.
  static BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "herd connection");
    if (m) {
      BIO_meth_set_write(m, bio_write);
      BIO_meth_set_read(m, bio_read);
      BIO_meth_set_ctrl(m, bio_ctrl);
    }
    return m;
  }();
  return method;
}

// --- Set-up ---------------------------------------------------------------------------------------

TlsConnection::TlsConnection(EventLoop& loop, int fd, ConnectionHandler& handler, const TlsContext& context,
                             Role role, std::string verify_name, EventLoop::Millis handshake_timeout)
    : loop_(loop),
      fd_(fd),
      handler_(handler),
      context_(context),
      role_(role),
      verify_name_(std::move(verify_name)),
      handshake_timeout_(handshake_timeout) {
  for (Buffer* b : {&in_, &plain_, &out_}) b->account_to(loop.buffer_account());
}

TlsConnection::~TlsConnection() {
  if (handshake_timer_) loop_.cancel(handshake_timer_);
  if (ssl_) SSL_free(ssl_);
  if (fd_ >= 0) {
    if (registered_) loop_.remove(fd_);
    ::close(fd_);
  }
}

bool TlsConnection::setup(std::string* error) {
  ERR_clear_error();
  ssl_ = SSL_new(context_.native());
  const BIO_METHOD* method = bio_method();
  BIO* bio = (ssl_ && method) ? BIO_new(method) : nullptr;
  if (!bio) {
    *error = "TLS setup failed: " + take_tls_errors("out of memory");
    return false;
  }
  BIO_set_data(bio, this);
  BIO_set_init(bio, 1);
  SSL_set_bio(ssl_, bio, bio);
  if (role_ == Role::kServer) {
    SSL_set_accept_state(ssl_);
    // A server asks for a client certificate only when the context demands one.
    if (!context_.require_peer_certificate()) SSL_set_verify(ssl_, SSL_VERIFY_NONE, nullptr);
    return true;
  }
  SSL_set_connect_state(ssl_);
  SSL_set_verify(ssl_, SSL_VERIFY_PEER, nullptr);
  if (verify_name_.empty()) return true;
  bool ok;
  if (is_ip_literal(verify_name_)) {
    ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), verify_name_.c_str()) == 1;
  } else {
    ok = SSL_set_tlsext_host_name(ssl_, verify_name_.c_str()) == 1 && SSL_set1_host(ssl_, verify_name_.c_str()) == 1;
  }
  if (!ok) *error = "TLS setup failed: cannot verify the name '" + verify_name_ + "': " + take_tls_errors("bad name");
  return ok;
}

void TlsConnection::start() {
  loop_.assert_in_loop();
  std::string error;
  if (!setup(&error)) {
    // Not from inside start(): the owner is still setting up.
    loop_.defer([this, error] { close(error); });
    return;
  }
  // The client speaks first (once the socket is writable); the server waits for its hello.
  interest_ = role_ == Role::kClient ? EPOLLOUT : EPOLLIN;
  if (!loop_.add(fd_, interest_, this)) {
    std::string why = std::string("cannot watch the socket: ") + std::strerror(errno);
    loop_.defer([this, why] { close(why); });
    return;
  }
  registered_ = true;
  handshake_timer_ = loop_.run_after(handshake_timeout_, [this] {
    handshake_timer_ = 0;
    close("TLS handshake timed out after " + std::to_string(handshake_timeout_.count()) + " ms");
  });
}

bool TlsConnection::peer_has_name(std::string_view name) const {
  return std::find(peer_names_.begin(), peer_names_.end(), name) != peer_names_.end();
}

std::string_view TlsConnection::protocol() const { return established_ && ssl_ ? SSL_get_version(ssl_) : ""; }

std::string_view TlsConnection::cipher() const {
  const char* name = established_ && ssl_ ? SSL_get_cipher_name(ssl_) : nullptr;
  return name ? name : "";
}

std::string TlsConnection::describe(int code, int result) {
  if (bio_out_of_memory_) {
    ERR_clear_error();
    return "out of memory";
  }
  switch (code) {
    case SSL_ERROR_SSL: {
      std::string text = take_tls_errors("protocol error");
      long verify = SSL_get_verify_result(ssl_);
      if (verify != X509_V_OK) text += std::string(" (") + X509_verify_cert_error_string(verify) + ")";
      return text;
    }
    case SSL_ERROR_SYSCALL: {
      int err = errno;
      std::string queued = take_tls_errors("");
      if (!queued.empty()) return queued;
      if (result == 0 || err == 0) return "connection closed by the peer";
      return std::strerror(err);
    }
    case SSL_ERROR_ZERO_RETURN:
      return "connection closed by the peer";
    default:
      ERR_clear_error();
      return "unexpected TLS state " + std::to_string(code);
  }
}

// --- Events ---------------------------------------------------------------------------------------

void TlsConnection::on_events(uint32_t events) {
  if (fd_ < 0) return;
  // Memory runs out on behalf of this connection: this connection goes, not the process.
  try {
    handle_events(events);
  } catch (const std::bad_alloc&) {
    close("out of memory");
  }
}

void TlsConnection::handle_events(uint32_t events) {
  if (events & EPOLLERR) {
    int err = socket_error(fd_);
    std::string why = err ? std::strerror(err) : "socket error";
    close(established_ ? why : "TLS handshake failed: " + why);
    return;
  }
  bool readable = events & (EPOLLIN | EPOLLHUP);
  bool writable = events & EPOLLOUT;
  if (!established_) {
    std::string error;
    if (writable && !flush(kMaxWritePerEvent, &error)) {
      close("TLS handshake failed: " + error);
      return;
    }
    if (readable || !hello_started_) {
      step_handshake();
    } else {
      update_interest();
    }
    return;
  }
  if (readable && write_wants_read_) {
    handle_write();
    if (fd_ < 0) return;
  }
  if (writable && read_wants_write_) {
    handle_read();
    if (fd_ < 0) return;
  }
  if (readable && want_read_ && !eof_ && !peer_closed_) {
    handle_read();
  } else if ((events & EPOLLHUP) && !writable && !write_wants_read_) {
    // Both directions are shut and we are not reading: nothing more can happen on this socket.
    close("connection hung up");
    return;
  }
  if (fd_ >= 0 && writable) handle_write();
}

void TlsConnection::step_handshake() {
  hello_started_ = true;
  ERR_clear_error();
  int r = SSL_do_handshake(ssl_);
  int code = r == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl_, r);
  std::string error;
  bool failed = code != SSL_ERROR_NONE && code != SSL_ERROR_WANT_READ && code != SSL_ERROR_WANT_WRITE;
  std::string why = failed ? "TLS handshake failed: " + describe(code, r) : std::string();
  if (!flush(kMaxWritePerEvent, &error) && !failed) {
    close("TLS handshake failed: " + error);
    return;
  }
  if (failed) {
    // The alert saying why went out with the flush above, as far as the kernel took it; a close
    // with unread input would send a reset that can overtake it, so the socket lingers.
    end(why, true);
    return;
  }
  if (code == SSL_ERROR_NONE) {
    finish_handshake();
    return;
  }
  update_interest();
}

void TlsConnection::finish_handshake() {
  established_ = true;
  if (handshake_timer_) {
    loop_.cancel(handshake_timer_);
    handshake_timer_ = 0;
  }
  peer_names_ = certificate_names(SSL_get0_peer_certificate(ssl_));
  update_interest();
  handler_.on_established(*this);
  if (fd_ < 0) return;
  // What was sent during the handshake (then close_notify, if asked for).
  if (!plain_.empty() || close_when_flushed_) handle_write();
  if (fd_ >= 0 && want_read_ && SSL_pending(ssl_) > 0) schedule_pump();
}

// --- Reading ----------------------------------------------------------------------------------------

void TlsConnection::handle_read() {
  size_t filled = 0;
  std::string error;
  read_wants_write_ = false;
  size_t out_before = out_.size();
  while (filled < kReadChunk) {
    ERR_clear_error();
    int n = SSL_read(ssl_, t_scratch + filled, static_cast<int>(kReadChunk - filled));
    if (n > 0) {
      filled += static_cast<size_t>(n);
      continue;
    }
    int code = SSL_get_error(ssl_, n);
    if (code == SSL_ERROR_WANT_WRITE) {
      read_wants_write_ = true;
    } else if (code == SSL_ERROR_ZERO_RETURN) {
      peer_closed_ = true;
      close_notify_received_ = !transport_eof_;
    } else if (code != SSL_ERROR_WANT_READ) {
      error = "TLS read failed: " + describe(code, n);
    }
    break;
  }
  // Records the read produced (a KeyUpdate answer, an alert) go out now, or when writable.
  if (error.empty() && out_.size() != out_before && out_before == 0 && !flush(kMaxWritePerEvent, &error)) {
    error = "TLS write failed: " + error;
  }
  update_interest();
  // SSL_has_pending: plaintext left over, or the start of a record whose end is still on its way.
  more_may_wait_ = filled == kReadChunk || read_wants_write_ || SSL_has_pending(ssl_) == 1;
  if (filled > 0) {
    offer_read(handler_, *this, in_, std::string_view(t_scratch, filled), [this] { return fd_ >= 0; },
               kKeepCapacity);
    if (fd_ < 0) return;
  }
  if (!error.empty()) {
    close(error);
    return;
  }
  if (peer_closed_) {
    if (want_read_ && !eof_) deliver_eof();
    return;
  }
  // Plaintext OpenSSL decrypted already is invisible to epoll: come back for it. (Not
  // SSL_has_pending: a partial record stays "pending" until the rest arrives, through epoll.)
  if (want_read_ && SSL_pending(ssl_) > 0) schedule_pump();
}

void TlsConnection::dispatch_input() {
  size_t used = handler_.on_data(*this, in_.view());
  if (fd_ < 0) return;
  in_.consume(used);
  if (in_.empty() && in_.capacity() > kKeepCapacity) in_.release();
}

void TlsConnection::deliver_eof() {
  eof_ = true;
  update_interest();
  handler_.on_eof(*this, in_.view());
  in_.clear();
}

// --- Writing ----------------------------------------------------------------------------------------

bool TlsConnection::encrypt_pending(std::string* error) {
  write_wants_read_ = false;
  while (!plain_.empty()) {
    ERR_clear_error();
    int n = SSL_write(ssl_, plain_.data(), static_cast<int>(std::min(plain_.size(), kMaxSslWrite)));
    if (n > 0) {
      plain_.consume(static_cast<size_t>(n));
      continue;
    }
    int code = SSL_get_error(ssl_, n);
    if (code == SSL_ERROR_WANT_READ) {
      write_wants_read_ = true;  // the socket must be readable before this write can go on
      break;
    }
    if (code == SSL_ERROR_WANT_WRITE) break;  // not with our BIO; out_ is flushed and we come back
    *error = "TLS write failed: " + describe(code, n);
    return false;
  }
  if (plain_.empty() && plain_.capacity() > kKeepCapacity) plain_.release();
  return true;
}

bool TlsConnection::flush(size_t budget, std::string* error) {
  size_t sent = 0;
  while (!out_.empty() && sent < budget) {
    ssize_t n = ::send(fd_, out_.data(), std::min(out_.size(), budget - sent), MSG_NOSIGNAL);
    if (n < 0) {
      if (retryable(errno)) break;
      *error = std::strerror(errno);
      return false;
    }
    out_.consume(static_cast<size_t>(n));
    sent += static_cast<size_t>(n);
  }
  if (out_.empty() && out_.capacity() > kKeepCapacity) out_.release();
  return true;
}

void TlsConnection::send(std::string_view bytes) {
  if (fd_ < 0 || write_failed_ || close_notify_queued_ || bytes.empty()) return;
  // Out of memory for the bytes kept back: this connection fails, as a write error would (send is
  // called from other objects' handlers and from tasks, where nothing would catch it for us).
  try {
    send_or_keep(bytes);
  } catch (const std::bad_alloc&) {
    fail_later("out of memory");
  }
}

void TlsConnection::send_or_keep(std::string_view bytes) {
  if (!established_ || write_wants_read_ || !plain_.empty()) {
    plain_.append(bytes);  // after the handshake (or the read a write waits for), in order
    return;
  }
  bool was_waiting = !out_.empty();
  std::string error;
  // Encrypted straight from the caller's bytes: OpenSSL's records land in out_ (our BIO never
  // blocks), so only a write that must first read leaves plaintext behind.
  size_t done = 0;
  while (done < bytes.size()) {
    ERR_clear_error();
    int n = SSL_write(ssl_, bytes.data() + done, static_cast<int>(std::min(bytes.size() - done, kMaxSslWrite)));
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    int code = SSL_get_error(ssl_, n);
    if (code == SSL_ERROR_WANT_READ) {
      write_wants_read_ = true;
    } else if (code != SSL_ERROR_WANT_WRITE) {
      error = "TLS write failed: " + describe(code, n);
    }
    break;
  }
  if (error.empty() && done < bytes.size()) plain_.append(bytes.substr(done));  // retried from plain_
  if (error.empty() && (was_waiting || flush(SIZE_MAX, &error))) {
    update_interest();
    return;
  }
  fail_later(std::move(error));
}

void TlsConnection::fail_later(std::string reason) {
  if (write_failed_) return;
  write_failed_ = true;
  close_reason_ = std::move(reason);
  // Closing here would re-enter the handler in the middle of its own call: close at the end of the
  // iteration instead (the owner frees the connection only after on_closed).
  loop_.defer([this] { close(close_reason_); });
}

void TlsConnection::handle_write() {
  std::string error;
  if (!encrypt_pending(&error) || !flush(kMaxWritePerEvent, &error)) {
    close(error);
    return;
  }
  update_interest();
  if (!out_.empty() || !plain_.empty()) return;  // more when writable (or readable)
  if (close_notify_queued_) {
    end(close_reason_, true);
  } else if (close_when_flushed_) {
    begin_shutdown();
  } else {
    handler_.on_drained(*this);
  }
}

void TlsConnection::begin_shutdown() {
  ERR_clear_error();
  SSL_shutdown(ssl_);  // queues close_notify in out_ (the peer's is not awaited)
  ERR_clear_error();
  close_notify_queued_ = true;
  std::string error;
  if (!flush(kMaxWritePerEvent, &error)) {
    close(close_reason_);
    return;
  }
  if (out_.empty()) {
    end(close_reason_, true);
    return;
  }
  update_interest();
}

// --- Backpressure and closing -------------------------------------------------------------------------

void TlsConnection::set_reading(bool on) {
  if (fd_ < 0 || on == want_read_) return;
  want_read_ = on;
  update_interest();
  if (on) schedule_pump();
}

void TlsConnection::redispatch() {
  // Not "in_.empty()": from inside on_data the unconsumed bytes only reach in_ after it returns,
  // so the check belongs to the deferred pump.
  if (fd_ < 0) return;
  schedule_pump();
}

void TlsConnection::schedule_pump() {
  if (pump_queued_) return;
  pump_queued_ = true;
  loop_.defer([this] {
    pump_queued_ = false;
    pump();
  });
}

void TlsConnection::pump() {
  if (fd_ < 0 || !established_ || !want_read_ || eof_) return;
  if (!in_.empty()) {
    dispatch_input();
    if (fd_ < 0 || !want_read_) return;
  }
  if (peer_closed_) {
    deliver_eof();
  } else if (SSL_pending(ssl_) > 0) {
    handle_read();
  }
}

void TlsConnection::close_when_flushed(std::string_view reason) {
  if (fd_ < 0) return;
  want_read_ = false;
  if (write_failed_ || (!established_ && plain_.empty())) {
    close(reason);
    return;
  }
  if (close_when_flushed_) return;
  close_when_flushed_ = true;
  close_reason_ = reason;
  if (!established_) {
    update_interest();
    return;  // flushed (then close_notify) once the handshake is done
  }
  if (plain_.empty() && out_.empty()) {
    begin_shutdown();
  } else {
    update_interest();
  }
}

void TlsConnection::close(std::string_view reason) { end(reason, false); }

void TlsConnection::end(std::string_view reason, bool flushed) {
  if (fd_ < 0) return;
  std::string why(reason);  // `reason` may point into this object
  if (handshake_timer_) {
    loop_.cancel(handshake_timer_);
    handshake_timer_ = 0;
  }
  if (registered_) loop_.remove(fd_);
  if (flushed) {
    loop_.close_lingering(fd_);
  } else {
    ::close(fd_);
  }
  fd_ = -1;
  registered_ = false;
  out_.release();
  plain_.release();
  ERR_clear_error();
  handler_.on_closed(*this, why);
}

void TlsConnection::update_interest() {
  if (!registered_) return;
  uint32_t want = 0;
  if (!established_) {
    want = EPOLLIN;  // the handshake always waits for the peer's next flight...
    if (!out_.empty() || !hello_started_) want |= EPOLLOUT;  // ...after ours is written
  } else {
    if ((want_read_ && !eof_ && !peer_closed_) || write_wants_read_) want |= EPOLLIN;
    if (!out_.empty() || read_wants_write_ || (!plain_.empty() && !write_wants_read_)) want |= EPOLLOUT;
  }
  if (want == interest_ || write_failed_) return;
  if (!loop_.modify(fd_, want, this)) {
    // Called from inside handlers: close at the end of the iteration, as for a failed write.
    write_failed_ = true;
    close_reason_ = std::string("cannot watch the socket: ") + std::strerror(errno);
    loop_.defer([this] { close(close_reason_); });
    return;
  }
  interest_ = want;
}

}  // namespace reactor
