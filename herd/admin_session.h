// AdminSession: one connection on the admin port (servers.NAME.admin_port), speaking HTTP/1.1 with
// keep-alive. Requests are parsed with http::RequestParser and answered one at a time, in order:
//   GET /healthz         200 "serving", or 503 while starting or stopping (never needs the token)
//   GET /metrics         Prometheus text format 0.0.4 (render_metrics)
//   GET /v1/clients/ID   the stored AT record as JSON, 404 when the client is unknown
//   GET /                the dashboard page (herd/dashboard_page.h), GET /world.json its map data,
//   GET /v1/dashboard    its JSON (render_dashboard_json; the token may come as a `token` query parameter)
// When the server has an admin token (admin_token_env), every route but /healthz, / and /world.json needs
// `Authorization: Bearer <token>` and answers 401 without it. Bounded: the request head
// (RequestLimits), the time a request may take from its first byte, or an idle keep-alive connection
// may stay silent (kRequestTimeout; slow or silent clients are closed), unsent response bytes
// (reading stops above kMaxUnsentBytes until they drain), and the time a reader may take none of
// them (kWriteTimeout; a connection owed output is not idle, but a stalled reader is closed).
//
// Threads: loop thread only. Owned by its LoopContext; freed at the end of the iteration it closed in.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "herd/admin_text.h"
#include "http/request_parser.h"
#include "reactor/event_loop.h"
#include "reactor/socket.h"
#include "reactor/tcp_connection.h"

namespace herd {

struct LoopContext;
class Server;

class AdminSession final : public reactor::ConnectionHandler {
 public:
  static constexpr auto kRequestTimeout = std::chrono::milliseconds(5000);
  // A reader that takes none of its unsent responses this long is closed (a stalled reader). Longer
  // than kRequestTimeout: a client may well pause between reading pipelined responses for longer than
  // it may take to send a request, and what it is owed is bounded by kMaxUnsentBytes meanwhile.
  static constexpr auto kWriteTimeout = std::chrono::milliseconds(10000);
  static constexpr size_t kMaxUnsentBytes = 1024 * 1024;

  // On the loop of `ctx`, answering about `server` (the admin port is the one view of the whole server).
  AdminSession(LoopContext& ctx, Server& server, uint64_t id, int fd, const reactor::SocketAddress& from);
  void start();

  size_t on_data(reactor::Connection& c, std::string_view data) override;
  void on_eof(reactor::Connection& c, std::string_view rest) override;
  void on_drained(reactor::Connection& c) override;
  void on_closed(reactor::Connection& c, std::string_view reason) override;

  // The response for one request (public for the unit tests: no connection needed).
  struct Response {
    int status = 200;
    std::string content_type = "text/plain; charset=utf-8";
    std::string body;
    bool auth_challenge = false;  // adds WWW-Authenticate: Bearer
    bool cors = false;            // adds Access-Control-Allow-Origin: * (the dashboard's JSON)
  };
  static Response route(Server& server, const http::IncomingRequest& request);

 private:
  using Clock = std::chrono::steady_clock;

  void respond(const Response& r, bool head_only, bool keep_alive, bool http_1_0 = false);
  // Arms the one timer for the earliest moment a bound may run out (keeps an earlier one: every
  // wake re-checks everything and arms the next).
  void schedule();
  void on_timer();

  LoopContext& ctx_;
  Server& server_;
  const uint64_t id_;
  reactor::TcpConnection conn_;
  http::RequestParser parser_;
  reactor::EventLoop::TimerId timer_ = 0;
  Clock::time_point wake_at_;        // when timer_ fires
  Clock::time_point request_began_;  // the first byte of the request being parsed came then
  Clock::time_point quiet_since_;    // owed nothing since then (the idle keep-alive clock)
  Clock::time_point stalled_since_;  // output has waited with no byte taken since then; unset: none waits
  uint64_t sent_total_ = 0;          // response bytes handed to conn_
  uint64_t taken_seen_ = 0;          // of those, taken by the kernel, at the last check
  int64_t unacked_seen_ = -1;        // the kernel's unacknowledged bytes at the last check
  bool closing_ = false;
};

}  // namespace herd
