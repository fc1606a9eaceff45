// PeerSession implementation.
#include "herd/peer_session.h"

#include <algorithm>

#include "herd/admission.h"
#include "herd/flood_router.h"
#include "herd/line_splitter.h"
#include "herd/peer_tls.h"
#include "herd/loop_context.h"
#include "protocol/command.h"
#include "protocol/fields.h"
#include "protocol/reply.h"
#include "protocol/sync_line.h"
#include "reactor/tcp_connection.h"
#include "reactor/tls_connection.h"

namespace herd {

PeerSession::PeerSession(LoopContext& ctx, uint64_t id, int fd, const reactor::SocketAddress& from)
    : ctx_(ctx),
      id_(id),
      max_line_(ctx.server.config.peer_max_line()),
      tag_("p" + std::to_string(id)),
      accepted_at_(Clock::now()),
      catch_up_(ctx),
      // A neighbour that vanishes (power cut, cable) sends no FIN: keepalive (or the user timeout, with
      // bytes in flight) notices, and the slot frees.
      conn_(open_peer_connection(ctx.loop, fd, *this, ctx.server.peer_tls, reactor::TlsConnection::Role::kServer, "",
                                   ctx.server.limits().peer_timeout_ms)) {
  ctx_.log.write(tag_, '+', "peer connected from ", from.to_string());
}

void PeerSession::start() { conn_->start(); }

void PeerSession::on_established(reactor::Connection& c) {
  if (!ctx_.server.peer_tls) return;
  auto& tls = static_cast<reactor::TlsConnection&>(c);
  std::string what = std::string(tls.protocol()) + " with a certificate from the herd CA for ";
  ctx_.log.write(tag_, '*', what, join_names(tls.peer_names()));
}

bool PeerSession::hello_allowed(std::string_view name, std::string* why) const {
  const Config& config = ctx_.server.config;
  if (!config.find(name)) {
    *why = "no server of the herd is called that";
    return false;
  }
  if (!ctx_.server.peer_tls) return true;  // plaintext links take the hello's word for it
  const auto& tls = static_cast<const reactor::TlsConnection&>(*conn_);
  if (!tls.peer_has_name(name)) {
    *why = "the certificate names " + join_names(tls.peer_names()) + ", not " + std::string(name);
    return false;
  }
  auto neighbours = config.neighbours(ctx_.server.self.name);
  if (std::none_of(neighbours.begin(), neighbours.end(), [&](const ServerConfig* s) { return s->name == name; })) {
    *why = std::string(name) + " is not a neighbour of " + ctx_.server.self.name;
    return false;
  }
  return true;
}

size_t PeerSession::on_data(reactor::Connection&, std::string_view data) {
  return take_lines(data);
}

void PeerSession::on_eof(reactor::Connection&, std::string_view rest) {
  // A server ends every line it sends, so a last line without its newline is a record cut off
  // (the neighbour died mid-write, or the stream was cut): its time or location may be shortened
  // into another valid one, so it is reported, never stored or passed on.
  const size_t consumed = take_lines(rest);
  if (conn_->is_open() && !protocol::trim(rest.substr(consumed)).empty()) {
    ctx_.log.write(tag_, '!', "a line cut off by the end of the stream (no newline); ignored: ",
                   rest.substr(consumed));
  }
  conn_->close("peer closed its side");
}

size_t PeerSession::take_lines(std::string_view data) {
  ::clock_gettime(CLOCK_REALTIME, &batch_wall_);
  size_t consumed = 0;
  std::string_view oversize;
  LineStop stop;
  {
    // Every record received is logged: the loop's lane is locked once for the read.
    const LogSink::Hold hold = ctx_.log.hold();
    stop = split_lines(
        data, max_line_, false, [this](std::string_view line) { return handle_line(line); }, &consumed,
        &oversize);
  }
  if (stop == LineStop::kOversize) {
    ctx_.log.write(tag_, '!', "line over the limit from a peer; dropping the link");
    conn_->close("peer line over the limit");
  }
  // The line timeout is on the line left over, which is a new one when lines were completed here
  // (a link streaming records has a record in pieces after almost every read, never the same one).
  if (stop == LineStop::kNeedMore && consumed < data.size()) {
    if (partial_since_ == Clock::time_point{} || consumed > 0) partial_since_ = Clock::now();
  } else {
    partial_since_ = {};
  }
  return consumed;
}

void PeerSession::close(std::string_view reason) { conn_->close(reason); }

void PeerSession::check_deadlines(Clock::time_point now) {
  if (!conn_->is_open()) return;
  const Limits& limits = ctx_.server.limits();
  if (peer_name_.empty() && now - accepted_at_ > std::chrono::milliseconds(limits.peer_hello_timeout_ms)) {
    conn_->close("no hello within " + std::to_string(limits.peer_hello_timeout_ms) + " ms");
    return;
  }
  // A neighbour past its hello whose stream stops mid-line is most likely behind a network that
  // stalled (loss, a path gone dark for a while), not a slow sender: TCP resumes it when the path heals,
  // and a path that stays dead ends the connection by limits.peer_timeout_ms. So its line may wait
  // that long; closing it sooner only turns a stall into a reconnect and a replay.
  const int64_t line_limit_ms =
      peer_name_.empty() ? limits.line_timeout_ms : std::max(limits.line_timeout_ms, limits.peer_timeout_ms);
  if (limits.line_timeout_ms > 0 && partial_since_ != Clock::time_point{} &&
      now - partial_since_ > std::chrono::milliseconds(line_limit_ms)) {
    conn_->close("line timeout: an incomplete line held for over " + std::to_string(line_limit_ms) + " ms");
  }
}

bool PeerSession::handle_line(std::string_view line) {
  if (!conn_->is_open()) return false;  // closed by an earlier line of this read: take no more
  const LoopLog& log = ctx_.log;
  if (peer_name_.empty()) {
    std::string_view fields[2];
    size_t n = protocol::split_fields(line, fields, 2);
    if (n == 0) return true;
    log.write(tag_, '<', line);
    if (n != 2 || fields[0] != "HERD") {
      log.write(tag_, '!', "expected the hello `HERD <server name>` first, got: ", line);
      conn_->close("no valid hello from peer");
      return false;
    }
    std::string why;
    if (!hello_allowed(fields[1], &why)) {
      log.write(tag_, '!', "hello refused: ", why);
      conn_->close("hello refused: " + why);
      return false;
    }
    peer_name_ = fields[1];
    peer_index_ = ctx_.server.config.index_of(peer_name_);
    tag_ += "/" + peer_name_;
    // Its slot is now a named neighbour's: no longer a pending one, and the oldest connection that
    // named itself the same goes if there are too many (a restarted neighbour's new link wins).
    ctx_.peer_named(id_, peer_name_);
    return true;
  }
  // Records of a BULK frame (catch-up) are not logged one by one: the frame and its end are.
  const bool bulk = catch_up_.in_bulk();
  // (An AT record, nearly every line, is told from a catch-up line here, without a call.)
  if (!bulk && protocol::may_be_sync_line(line) && catch_up_.handle(*conn_, peer_name_, tag_, line)) return true;
  protocol::At at;
  const protocol::CommandKind kind = protocol::parse_at(line, &at);
  if (kind == protocol::CommandKind::kEmpty) return true;
  if (!bulk) log.write_at(batch_wall_, tag_, '<', line);
  bool stored = false;
  const protocol::Timestamp now = protocol::timestamp_of(batch_wall_);
  if (kind != protocol::CommandKind::kAt) {
    if (bulk) log.write_at(batch_wall_, tag_, '<', line);
    log.write_at(batch_wall_, tag_, '!', "not an AT record; ignored");
  } else if (const char* why = refusal(ctx_.server.limits(), at.client_id, at.time, now)) {
    log.write_at(batch_wall_, tag_, '!', why, "; not stored");
  } else {
    if (peer_index_ >= 0) ctx_.metrics.peer_received[peer_index_].add();
    const protocol::RecordForm record = protocol::at_record(line, at, &record_);
    stored = ctx_.server.router
                 .offer(at.client_id, at.time, record, LocationTable::Source::kPeer, peer_name_, at.extra, nullptr)
                 .stored;
    if (stored) {
      ctx_.metrics.recent.add(at.client_id, at.server, at.location_text,
                              protocol::unix_ms_of(batch_wall_));
    }
  }
  if (bulk) catch_up_.took_bulk_line(stored);
  return true;
}

void PeerSession::on_closed(reactor::Connection&, std::string_view reason) {
  ctx_.log.write(tag_, '-', reason);
  ctx_.release_peer(id_, peer_name_);
  LoopContext* ctx = &ctx_;
  uint64_t id = id_;
  ctx_.loop.defer([ctx, id] { ctx->peers.erase(id); });
}

}  // namespace herd
