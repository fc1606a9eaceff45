// UpstreamConnection implementation: dial, transport, one request and its parsed response at a time.
#include "http/upstream_connection.h"

#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "reactor/tcp_connection.h"
#include "reactor/tls_connection.h"

namespace http {

UpstreamConnection::UpstreamConnection(reactor::EventLoop& loop, uint64_t id, const ClientOptions& options,
                                       Owner& owner)
    : loop_(loop), id_(id), options_(options), owner_(owner) {}

UpstreamConnection::~UpstreamConnection() { close_dial_socket(); }

std::string UpstreamConnection::where() const {
  size_t i = next_address_ > 0 ? next_address_ - 1 : 0;
  return i < addresses_.size() ? addresses_[i].to_string() : options_.endpoint.authority();
}

bool UpstreamConnection::dial(std::vector<reactor::SocketAddress> addresses, std::string* error) {
  addresses_ = std::move(addresses);
  next_address_ = 0;
  if (try_addresses(error)) return true;
  closed_ = true;
  return false;
}

bool UpstreamConnection::try_addresses(std::string* error) {
  while (next_address_ < addresses_.size()) {
    const reactor::SocketAddress& addr = addresses_[next_address_++];
    std::string why;
    int fd = reactor::connect_tcp(addr, &why);
    if (fd < 0) {
      dial_errors_ += (dial_errors_.empty() ? "" : "; ") + why;
      continue;
    }
    if (!loop_.add(fd, EPOLLOUT, this)) {  // the loop refuses it: this address failed, try the next
      dial_errors_ += (dial_errors_.empty() ? "" : "; ") + addr.to_string() + ": cannot watch the socket: " +
                      std::strerror(errno);
      ::close(fd);
      continue;
    }
    dial_fd_ = fd;
    return true;
  }
  *error = "cannot connect to " + options_.endpoint.authority() + ": " +
           (dial_errors_.empty() ? std::string("no address") : dial_errors_);
  return false;
}

void UpstreamConnection::on_events(uint32_t) {
  if (dial_fd_ < 0) return;
  int err = reactor::socket_error(dial_fd_);
  if (err != 0) {
    dial_errors_ += (dial_errors_.empty() ? "" : "; ") + where() + ": " + std::strerror(err);
    close_dial_socket();
    std::string error;
    if (try_addresses(&error)) return;
    closed_ = true;
    if (busy_) {
      end_exchange(Outcome{error});
    } else {
      owner_.on_lost(*this, error);
    }
    return;
  }
  int fd = dial_fd_;
  loop_.remove(fd);
  dial_fd_ = -1;
  reactor::set_nodelay(fd);
  connected(fd);
}

void UpstreamConnection::connected(int fd) {
  if (options_.endpoint.tls()) {
    // Verifies the certificate chain against the context's CAs and the endpoint's host name (also
    // sent as SNI when it is a name).
    conn_ = std::make_unique<reactor::TlsConnection>(loop_, fd, *this, *options_.tls,
                                                     reactor::TlsConnection::Role::kClient, options_.endpoint.host,
                                                     options_.handshake_timeout);
  } else {
    conn_ = std::make_unique<reactor::TcpConnection>(loop_, fd, *this);
  }
  conn_->start();
  if (!unsent_.empty()) {
    conn_->send(unsent_);
    std::string().swap(unsent_);
  }
}

void UpstreamConnection::close_dial_socket() {
  if (dial_fd_ < 0) return;
  loop_.remove(dial_fd_);
  ::close(dial_fd_);
  dial_fd_ = -1;
}

void UpstreamConnection::exchange(std::string bytes) {
  busy_ = true;
  parser_ = std::make_unique<ResponseParser>(options_.limits);
  if (conn_) {
    conn_->send(bytes);
  } else {
    unsent_ = std::move(bytes);
  }
}

void UpstreamConnection::abort(std::string_view reason) {
  if (aborting_) return;
  aborting_ = true;
  closed_ = true;
  busy_ = false;
  close_dial_socket();
  if (conn_) conn_->close(reason);
}

void UpstreamConnection::end_exchange(Outcome outcome) {
  busy_ = false;
  if (outcome.error.empty()) ++completed_;
  owner_.on_outcome(*this, std::move(outcome));
}

void UpstreamConnection::on_established(reactor::Connection& c) {
  if (!options_.log) return;
  std::string how = "plain HTTP";
  if (options_.endpoint.tls()) {
    auto& tls = static_cast<reactor::TlsConnection&>(c);
    how = std::string(tls.protocol()) + ", " + std::string(tls.cipher());
  }
  options_.log(loop_, "connected to " + where() + " (" + options_.endpoint.origin() + ", " + how + ")");
}

size_t UpstreamConnection::on_data(reactor::Connection& c, std::string_view data) {
  if (closed_) return data.size();
  if (!busy_) {
    abort("unexpected bytes from the server");
    owner_.on_lost(*this, "the server sent bytes while the connection was idle");
    return data.size();
  }
  size_t used = 0;
  ResponseParser::State state = parser_->feed(data, &used);
  if (state == ResponseParser::State::kIncomplete) return data.size();
  Outcome outcome;
  outcome.response_started = true;
  if (state == ResponseParser::State::kError) {
    outcome.error = where() + ": " + parser_->error();
    abort("malformed response");
  } else {
    outcome.response = std::move(parser_->response());
    // Bytes beyond the announced end mean the framing cannot be trusted for another request. So may
    // bytes not read yet: when the read that brought the end filled its buffer, more may wait right
    // behind it (in the kernel or the TLS layer), and the next request would take them as its answer.
    const char* why = nullptr;
    if (used != data.size()) {
      why = "bytes beyond the response";
    } else if (!parser_->keep_alive()) {
      why = "the response ends the connection";
    } else if (c.more_input_may_wait()) {
      why = "the response ends where a full read ends: bytes beyond it may wait unread";
    }
    outcome.reusable = why == nullptr;
    if (why) abort(why);
  }
  end_exchange(std::move(outcome));
  return data.size();
}

void UpstreamConnection::on_eof(reactor::Connection& c, std::string_view) {
  if (closed_) return;
  if (!busy_) {
    abort("the server closed the idle connection");
    owner_.on_lost(*this, "the server closed the idle connection");
    return;
  }
  Outcome outcome;
  outcome.response_started = parser_->started();
  if (parser_->finish() == ResponseParser::State::kComplete) {
    if (c.eof_confirmed()) {
      outcome.response = std::move(parser_->response());  // a body delimited by the close
    } else {
      // Over TLS only a close_notify says the body is whole: a bare FIN may cut it anywhere.
      outcome.error =
          where() + ": the response's body ends at the close, and the TLS stream ended without a close_notify";
    }
  } else {
    outcome.error = where() + ": " + parser_->error();
  }
  abort("the server closed the connection");
  end_exchange(std::move(outcome));
}

void UpstreamConnection::on_closed(reactor::Connection&, std::string_view reason) {
  bool was_busy = busy_;
  closed_ = true;
  busy_ = false;
  if (aborting_) return;
  if (was_busy) {
    Outcome outcome;
    outcome.response_started = parser_ && parser_->started();
    outcome.error = where() + ": connection lost " +
                    (outcome.response_started ? "in the middle of the response: " : "before the response: ") +
                    std::string(reason);
    busy_ = true;  // end_exchange clears it
    end_exchange(std::move(outcome));
  } else {
    owner_.on_lost(*this, reason);
  }
}

}  // namespace http
