// UpstreamConnection: one HTTP/1.1 connection to the upstream, carrying one request at a time. It
// dials the addresses it is given in turn (non-blocking connect), wraps the socket in the transport
// (plain TCP, or TLS with certificate and host-name verification for https), writes the request and
// parses the response. Whether the connection can carry another request afterwards (keep-alive, no
// `Connection: close`, no bytes beyond the announced end, and none that may wait unread behind it:
// a response whose last byte came at the end of a read that filled its buffer is the last) is part
// of the outcome.
//
// Threads: loop thread only. Owned by a LoopPool, which frees it at the end of the iteration in
// which it closed. Every exchange() ends in exactly one Owner::on_outcome, unless abort() comes
// first.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "http/client_options.h"
#include "http/response_parser.h"
#include "reactor/connection.h"
#include "reactor/socket.h"

namespace http {

class UpstreamConnection final : public reactor::ConnectionHandler, public reactor::Pollable {
 public:
  struct Outcome {
    std::string error;              // empty: `response` is complete
    Response response;
    bool reusable = false;          // the connection may carry another request
    bool response_started = false;  // any response byte arrived (a stale connection sends none)
  };
  class Owner {
   public:
    // The exchange ended. The owner decides what becomes of the connection: another exchange(),
    // keeping it idle, or abort().
    virtual void on_outcome(UpstreamConnection& c, Outcome outcome) = 0;
    // The connection closed (or misbehaved and was closed) while no exchange was running.
    virtual void on_lost(UpstreamConnection& c, std::string_view reason) = 0;

   protected:
    ~Owner() = default;
  };

  UpstreamConnection(reactor::EventLoop& loop, uint64_t id, const ClientOptions& options, Owner& owner);
  ~UpstreamConnection();
  UpstreamConnection(const UpstreamConnection&) = delete;
  UpstreamConnection& operator=(const UpstreamConnection&) = delete;

  // Starts connecting to `addresses` (tried in order). False with *error set when every address
  // failed at once (nothing is pending then); otherwise the result comes with the first exchange.
  bool dial(std::vector<reactor::SocketAddress> addresses, std::string* error);
  // Sends one request (`bytes` as serialized); written once connected if dialling is in progress.
  void exchange(std::string bytes);
  // Closes without telling the owner. Idempotent.
  void abort(std::string_view reason);

  uint64_t id() const { return id_; }
  bool open() const { return !closed_; }
  bool busy() const { return busy_; }
  // Exchanges completed on this connection so far.
  int completed() const { return completed_; }

  // reactor::ConnectionHandler
  void on_established(reactor::Connection& c) override;  // logs the new connection
  size_t on_data(reactor::Connection& c, std::string_view data) override;
  void on_eof(reactor::Connection& c, std::string_view rest) override;
  void on_closed(reactor::Connection& c, std::string_view reason) override;
  // reactor::Pollable: the non-blocking connect finished.
  void on_events(uint32_t events) override;

 private:
  bool try_addresses(std::string* error);  // dials the next address that does not fail at once
  void connected(int fd);
  void end_exchange(Outcome outcome);
  void close_dial_socket();
  std::string where() const;  // "127.0.0.1:443" of the address in use

  reactor::EventLoop& loop_;
  const uint64_t id_;
  const ClientOptions& options_;
  Owner& owner_;
  std::vector<reactor::SocketAddress> addresses_;
  size_t next_address_ = 0;
  std::string dial_errors_;        // the failures so far, for the message when all fail
  int dial_fd_ = -1;               // while connecting
  std::unique_ptr<reactor::Connection> conn_;
  std::unique_ptr<ResponseParser> parser_;
  std::string unsent_;             // the request, while connecting
  bool busy_ = false;
  bool closed_ = false;
  bool aborting_ = false;          // abort() in progress: on_closed stays silent
  int completed_ = 0;
};

}  // namespace http
