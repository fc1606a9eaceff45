// PeerSession implementation.
#include "herd/peer_session.h"

#include "herd/admission.h"
#include "herd/line_splitter.h"
#include "herd/server.h"
#include "protocol/command.h"
#include "protocol/fields.h"
#include "protocol/reply.h"

namespace herd {

PeerSession::PeerSession(LoopContext& ctx, uint64_t id, int fd, const reactor::SocketAddress& from)
    : ctx_(ctx),
      server_(ctx.server),
      id_(id),
      max_line_(ctx.server.config().peer_max_line()),
      tag_("p" + std::to_string(id)),
      conn_(ctx.loop, fd, *this) {
  server_.log().write(ctx_.index(), tag_, '+', "peer connected from ", from.to_string());
}

void PeerSession::start() { conn_.start(); }

size_t PeerSession::on_data(reactor::Connection&, std::string_view data) {
  return take_lines(data, false);
}

void PeerSession::on_eof(reactor::Connection&, std::string_view rest) {
  take_lines(rest, true);
  conn_.close("peer closed its side");
}

size_t PeerSession::take_lines(std::string_view data, bool at_eof) {
  size_t consumed = 0;
  std::string_view oversize;
  LineStop stop = split_lines(
      data, max_line_, at_eof, [this](std::string_view line) { return handle_line(line); },
      &consumed, &oversize);
  if (stop == LineStop::kOversize) {
    server_.log().write(ctx_.index(), tag_, '!', "line over the limit from a peer; dropping the link");
    conn_.close("peer line over the limit");
  }
  return consumed;
}

bool PeerSession::handle_line(std::string_view line) {
  LogSink& log = server_.log();
  if (peer_name_.empty()) {
    std::string_view fields[2];
    size_t n = protocol::split_fields(line, fields, 2);
    if (n == 0) return true;
    log.write(ctx_.index(), tag_, '<', line);
    if (n != 2 || fields[0] != "HERD" || !server_.config().find(fields[1])) {
      log.write(ctx_.index(), tag_, '!', "expected the hello `HERD <server name>` first, got: ", line);
      conn_.close("no valid hello from peer");
      return false;
    }
    peer_name_ = fields[1];
    tag_ += "/" + peer_name_;
    return true;
  }
  protocol::Command cmd = protocol::parse_command(line);
  if (cmd.kind == protocol::CommandKind::kEmpty) return true;
  log.write(ctx_.index(), tag_, '<', line);
  if (cmd.kind != protocol::CommandKind::kAt) {
    log.write(ctx_.index(), tag_, '!', "not an AT record; ignored");
    return true;
  }
  const protocol::At& at = cmd.at;
  if (const char* why = refusal(server_.limits(), at.client_id, at.time, protocol::realtime_now())) {
    log.write(ctx_.index(), tag_, '!', why, "; not stored");
    return true;
  }
  record_.clear();
  protocol::append_at_record(record_, at);
  if (server_.table().offer(at.client_id, at.time, record_, LocationTable::Source::kPeer,
                            nullptr)) {
    server_.flood(record_, peer_name_, at.extra);
  }
  return true;
}

void PeerSession::on_closed(reactor::Connection&, std::string_view reason) {
  server_.log().write(ctx_.index(), tag_, '-', reason);
  server_.release_peer();
  LoopContext* ctx = &ctx_;
  uint64_t id = id_;
  ctx_.loop.defer([ctx, id] { ctx->peers.erase(id); });
}

}  // namespace herd
