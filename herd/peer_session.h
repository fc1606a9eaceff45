// PeerSession: one inbound connection on the peer port, from a neighbour's PeerLink. The first line
// must be the hello `HERD <name>` naming a server of the config; after it, every line is a flooded
// AT record or a catch-up line (CatchUpReceiver). With peer_tls the connection is TLS with a client
// certificate from the herd CA, and the hello is accepted only when that certificate names the server
// the hello names and that server is a neighbour of this one; otherwise the connection is closed
// (logged) before anything is stored. Records newer than the table's are stored and flooded on
// (FloodRouter) to the neighbours that the record's seen= field does not already cover and never back
// to the sender. The only thing ever written back is the answer to the neighbour's SYNC. Other lines
// are logged and ignored.
//
// Threads: loop thread only. Owned by its LoopContext; freed at the end of the iteration it closed in.
#pragma once

#include <chrono>
#include <ctime>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "herd/catch_up_receiver.h"
#include "reactor/connection.h"
#include "reactor/socket.h"

namespace herd {

struct LoopContext;

class PeerSession final : public reactor::ConnectionHandler {
 public:
  PeerSession(LoopContext& ctx, uint64_t id, int fd, const reactor::SocketAddress& from);
  void start();

  void on_established(reactor::Connection& c) override;
  size_t on_data(reactor::Connection& c, std::string_view data) override;
  void on_eof(reactor::Connection& c, std::string_view rest) override;
  void on_closed(reactor::Connection& c, std::string_view reason) override;

  using Clock = std::chrono::steady_clock;
  // Loop thread, from the loop's periodic sweep: closes the connection (the log says why) when no
  // valid hello came within limits.peer_hello_timeout_ms of the accept (a TLS handshake included),
  // or an incomplete line has been held for over limits.line_timeout_ms (after the hello, for over
  // limits.peer_timeout_ms if that is longer: a stalled network is not a slow sender).
  void check_deadlines(Clock::time_point now);
  // Loop thread: closes the connection with `reason` (the session goes at the end of the iteration).
  void close(std::string_view reason);
  bool has_hello() const { return !peer_name_.empty(); }

 private:
  // Handles the complete lines at the front of `data` (each logged under one hold of the log lane);
  // returns the bytes they took. An unterminated rest waits for more, or at the end is cut off.
  size_t take_lines(std::string_view data);
  bool handle_line(std::string_view line);
  // Whether the hello's `name` may speak on this connection; *why says why not.
  bool hello_allowed(std::string_view name, std::string* why) const;

  LoopContext& ctx_;
  const uint64_t id_;
  const size_t max_line_;    // Config::peer_max_line()
  std::string tag_;          // "p<id>", then "p<id>/<name>" after the hello
  std::string peer_name_;    // from the hello; empty until then
  int peer_index_ = -1;      // its position in Config::servers (for the received counters)
  std::string record_;       // scratch for the normalised AT record
  const Clock::time_point accepted_at_;
  Clock::time_point partial_since_;  // an incomplete line has been waiting since then (default: none)
  timespec batch_wall_{};  // when the lines being handled were read: their log entries' time
  CatchUpReceiver catch_up_;
  std::unique_ptr<reactor::Connection> conn_;  // TcpConnection, or TlsConnection with peer_tls
};

}  // namespace herd
