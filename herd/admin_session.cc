// AdminSession implementation and the admin routes.
#include "herd/admin_session.h"

#include <algorithm>

#include "herd/dashboard_page.h"
#include "herd/metrics.h"
#include "herd/server.h"
#include "protocol/fields.h"
#include "protocol/location.h"
#include "reactor/socket.h"

namespace herd {
namespace {

// How often a connection owed output is checked for progress: TcpConnection tells when all of it has
// left, not when some has.
constexpr auto kWriteCheck = std::chrono::milliseconds(1000);

const char* status_text(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
  }
}

AdminSession::Response client_record(Server& server, std::string_view encoded_id) {
  AdminSession::Response r;
  std::string id;
  if (!percent_decode(encoded_id, &id) || id.empty()) {
    r.status = 400;
    r.body = "malformed client ID\n";
    return r;
  }
  std::string record;
  protocol::Location where;
  if (!server.table().lookup(id, &record, &where)) {
    r.status = 404;
    r.content_type = "application/json";
    r.body = "{\"error\":\"unknown client\",\"client\":";
    append_json_string(r.body, id);
    r.body += "}\n";
    return r;
  }
  // The record is `AT server diff id location time`, single spaces.
  std::string_view f[6];
  size_t n = protocol::split_fields(record, f, 6);
  r.content_type = "application/json";
  std::string& b = r.body;
  b = "{\"client\":";
  append_json_string(b, id);
  if (n == 6) {
    b += ",\"server\":";
    append_json_string(b, f[1]);
    b += ",\"time_diff\":";
    append_json_string(b, f[2]);
    b += ",\"location\":";
    append_json_string(b, f[4]);
    b += ",\"latitude\":" + std::to_string(where.lat) + ",\"longitude\":" + std::to_string(where.lng);
    b += ",\"client_time\":";
    append_json_string(b, f[5]);
  }
  b += ",\"record\":";
  append_json_string(b, record);
  b += "}\n";
  return r;
}

}  // namespace

AdminSession::AdminSession(LoopContext& ctx, Server& server, uint64_t id, int fd, const reactor::SocketAddress& from)
    : ctx_(ctx), server_(server), id_(id), conn_(ctx.loop, fd, *this) {
  ctx_.log.write("a" + std::to_string(id_), '+', "admin connection from ", from.to_string());
}

void AdminSession::start() {
  quiet_since_ = Clock::now();
  conn_.start();
  schedule();
}

void AdminSession::schedule() {
  if (!conn_.is_open()) return;
  const Clock::time_point now = Clock::now();
  Clock::time_point due = (parser_.started() && !closing_ ? request_began_ : quiet_since_) + kRequestTimeout;
  if (conn_.pending_output() > 0) due = std::min(due, now + kWriteCheck);
  if (timer_ != 0) {
    if (wake_at_ <= due) return;
    ctx_.loop.cancel(timer_);
  }
  wake_at_ = due;
  const auto delay = std::chrono::ceil<std::chrono::milliseconds>(due - now);
  LoopContext* ctx = &ctx_;
  uint64_t id = id_;
  timer_ = ctx_.loop.run_after(std::max(delay, std::chrono::milliseconds(0)), [ctx, id] {
    auto it = ctx->admins.find(id);
    if (it == ctx->admins.end()) return;
    it->second->timer_ = 0;
    it->second->on_timer();
  });
}

void AdminSession::on_timer() {
  if (!conn_.is_open()) return;
  const Clock::time_point now = Clock::now();
  // A request still arriving (slowloris) hears 408.
  if (parser_.started() && !closing_ && now - request_began_ >= kRequestTimeout) {
    respond(Response{408, "text/plain; charset=utf-8", "request too slow\n"}, false, false);
    if (!conn_.is_open()) return;
  }
  const size_t unsent = conn_.pending_output();
  if (unsent > 0) {
    // A connection owed output is not idle (closing it would cut a response), but one whose reader
    // takes nothing is closed. Progress is bytes the kernel took from us, or bytes the client
    // acknowledged from the kernel's queue (a slow reader shrinks that before it has room for more).
    const uint64_t taken = sent_total_ - unsent;
    const int64_t unacked = reactor::unacked_bytes(conn_.fd());
    if (stalled_since_ == Clock::time_point{} || taken != taken_seen_ || unacked != unacked_seen_) {
      taken_seen_ = taken;  // progress (or output that just began to wait): the clock starts again
      unacked_seen_ = unacked;
      stalled_since_ = now;
    } else if (now - stalled_since_ >= kWriteTimeout) {
      conn_.close("stalled reader: took none of " + std::to_string(unsent) + " unsent bytes for over " +
                  std::to_string(kWriteTimeout.count()) + " ms");
      return;
    }
  } else {
    stalled_since_ = {};
    // An idle keep-alive connection is just closed.
    if ((closing_ || !parser_.started()) && now - quiet_since_ >= kRequestTimeout) {
      conn_.close("admin connection idle");
      return;
    }
  }
  schedule();
}

size_t AdminSession::on_data(reactor::Connection&, std::string_view data) {
  size_t used_total = 0;
  while (!closing_ && conn_.is_open()) {
    // A request's time runs from its first byte, not from the response before it.
    if (!parser_.started() && used_total < data.size()) request_began_ = Clock::now();
    size_t used = 0;
    auto state = parser_.feed(data.substr(used_total), &used);
    used_total += used;
    if (state == http::RequestParser::State::kIncomplete) {
      schedule();
      return used_total;
    }
    if (state == http::RequestParser::State::kError) {
      Response r{parser_.error_status(), "text/plain; charset=utf-8", parser_.error() + "\n"};
      respond(r, false, false);
      return data.size();
    }
    const http::IncomingRequest& req = parser_.request();
    ctx_.metrics.admin_requests.add();
    Response r = route(server_, req);
    respond(r, req.method == "HEAD", req.keep_alive, req.http_1_0);
    parser_.reset();
    if (conn_.pending_output() > kMaxUnsentBytes) {
      conn_.set_reading(false);  // resumed by on_drained, which re-offers what is left
      return used_total;
    }
    if (used_total >= data.size()) return used_total;
  }
  return data.size();
}

void AdminSession::on_eof(reactor::Connection&, std::string_view rest) {
  if (!closing_) on_data(conn_, rest);
  conn_.close_when_flushed("admin client closed its side");
}

void AdminSession::on_drained(reactor::Connection&) {
  quiet_since_ = Clock::now();  // idle from when the last response has left, not from when it was queued
  if (!closing_ && !conn_.reading()) conn_.set_reading(true);
}

void AdminSession::respond(const Response& r, bool head_only, bool keep_alive, bool http_1_0) {
  std::string out = "HTTP/1.1 " + std::to_string(r.status) + " " + status_text(r.status) + "\r\n";
  out += "Content-Type: " + r.content_type + "\r\n";
  out += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
  out += "Cache-Control: no-store\r\n";
  if (r.auth_challenge) out += "WWW-Authenticate: Bearer\r\n";
  if (r.cors) out += "Access-Control-Allow-Origin: *\r\n";
  if (r.status == 405) out += "Allow: GET, HEAD\r\n";
  if (!keep_alive) out += "Connection: close\r\n";
  // HTTP/1.0 closes after each response unless the response says otherwise: a 1.0 client that asked
  // for keep-alive and is not told would wait for the end of the body until the idle timeout.
  if (keep_alive && http_1_0) out += "Connection: keep-alive\r\n";
  out += "\r\n";
  if (!head_only) out += r.body;
  conn_.send(out);
  sent_total_ += out.size();
  if (!keep_alive) {
    closing_ = true;
    // The timer stays: a reader that never takes the last response must not hold the connection.
    conn_.close_when_flushed("admin response sent");
  } else {
    quiet_since_ = Clock::now();
  }
  schedule();
}

AdminSession::Response AdminSession::route(Server& server, const http::IncomingRequest& req) {
  std::string_view path = req.path();
  Response r;
  if (path == "/healthz") {
    switch (server.state()) {
      case Server::State::kServing: r.body = "serving\n"; break;
      case Server::State::kStarting: r.status = 503; r.body = "starting\n"; break;
      case Server::State::kStopping: r.status = 503; r.body = "stopping\n"; break;
    }
    return r;
  }
  // The dashboard's page and map hold no herd data: they load without the token.
  if (path == "/") {
    r.content_type = "text/html; charset=utf-8";
    r.body = kDashboardHtml;
    return r;
  }
  if (path == "/world.json") {
    if (server.world_map().empty()) {
      r.status = 404;
      r.body = "no map data (build/data/land-110m.json is made by `make`)\n";
    } else {
      r.content_type = "application/json";
      r.body = server.world_map();
    }
    return r;
  }
  const bool dashboard = path == "/v1/dashboard";
  const std::string& token = server.admin_token();
  if (!token.empty()) {
    const std::string* auth = req.header("authorization");
    std::string_view given;
    bool ok = auth && bearer_credentials(*auth, &given) && same_secret(given, token);
    // The dashboard polls every server from one page: a plain GET with the token in the query
    // (no custom header, so no CORS preflight), among whatever other parameters the URL has. Only
    // the first `token` counts, so one request cannot try many guesses.
    std::string query_token;
    if (!ok && dashboard && query_parameter(req.target, "token", &query_token)) {
      ok = same_secret(query_token, token);
    }
    if (!ok) {
      r.status = 401;
      r.body = "a bearer token is required\n";
      r.auth_challenge = true;
      return r;
    }
  }
  if (path == "/metrics") {
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = render_metrics(server);
    return r;
  }
  if (dashboard) {
    r.content_type = "application/json";
    r.body = render_dashboard_json(server);
    r.cors = true;
    return r;
  }
  constexpr std::string_view kClients = "/v1/clients/";
  if (path.size() > kClients.size() && path.substr(0, kClients.size()) == kClients) {
    return client_record(server, path.substr(kClients.size()));
  }
  r.status = 404;
  r.body = "no such page; try /, /healthz, /metrics, /v1/clients/ID, /v1/dashboard\n";
  return r;
}

void AdminSession::on_closed(reactor::Connection&, std::string_view reason) {
  if (timer_ != 0) ctx_.loop.cancel(timer_);
  timer_ = 0;
  ctx_.log.write("a" + std::to_string(id_), '-', reason);
  ctx_.server.admission.release(Admission::Port::kAdmin);
  LoopContext* ctx = &ctx_;
  uint64_t id = id_;
  ctx_.loop.defer([ctx, id] { ctx->admins.erase(id); });
}

}  // namespace herd
