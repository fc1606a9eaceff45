// ClientSession implementation.
#include "herd/client_session.h"

#include <algorithm>

#include "herd/admission.h"
#include "herd/flood_router.h"
#include "herd/line_splitter.h"
#include "herd/loop_context.h"
#include "protocol/command.h"
#include "protocol/reply.h"

namespace herd {
namespace {
// Output buffers over this capacity are given back after a flush: idle clients should hold little.
constexpr size_t kKeepOutCapacity = 16 * 1024;
}  // namespace

ClientSession::ClientSession(LoopContext& ctx, uint64_t id, int fd, const reactor::SocketAddress& from)
    : ctx_(ctx),
      id_(id),
      tag_("c" + std::to_string(id)),
      conn_(ctx.loop, fd, *this),
      last_input_(Clock::now()) {
  ctx_.log.write(tag_, '+', "client connected from ", from.to_string());
}

void ClientSession::start() {
  update_read_size();  // a client that comes while the server is past its budget reads small at once
  conn_.start();
}

void ClientSession::update_read_size() {
  // Past the budget, reads are small: the commands read and not yet taken (their replies wait) stay
  // few, and a line over the tight limit is found before it is all in memory.
  conn_.set_read_size(ctx_.server.admission.over_budget() ? Admission::kTightRead : reactor::Connection::kReadChunk);
}

size_t ClientSession::on_data(reactor::Connection&, std::string_view data) {
  last_input_ = Clock::now();
  return take_lines(data, false);
}

void ClientSession::on_eof(reactor::Connection&, std::string_view rest) {
  eof_ = true;
  if (!finishing_) {
    size_t used = take_lines(rest, true);
    // Lines held back by the output bounds are still owed an answer: the connection forgets its
    // input at EOF, so the session keeps them until there is room (resume_after_eof).
    if (used < rest.size() && !finishing_) eof_rest_.assign(rest.substr(used));
  }
  if (eof_rest_.empty()) finishing_ = true;
  maybe_finish();
}

void ClientSession::resume_after_eof() {
  size_t used = take_lines(eof_rest_, true);
  eof_rest_.erase(0, used);
  // Stopped by the bounds again: a resume is already queued, or the next drain queues one.
  if (!eof_rest_.empty() && !finishing_) return;
  std::string().swap(eof_rest_);
  finishing_ = true;
  maybe_finish();
}

size_t ClientSession::take_lines(std::string_view data, bool at_eof) {
  if (finishing_) return data.size();
  in_batch_ = true;
  batch_start_ = std::chrono::steady_clock::now();
  ::clock_gettime(CLOCK_REALTIME, &batch_wall_);
  batch_replies_ = 0;
  size_t consumed = 0;
  std::string_view oversize;
  LineStop stop;
  // Past the server's budget for buffered bytes, a line must be no longer than a command can be:
  // one held to fill memory is answered as a line over the limit.
  const Admission& admission = ctx_.server.admission;
  const size_t max_line = admission.over_budget() ? admission.tight_line_limit() : ctx_.server.limits().max_line;
  {
    // Every command line is logged (and most replies): the loop's lane is locked once for the read.
    const LogSink::Hold hold = ctx_.log.hold();
    stop = split_lines(
        data, max_line, at_eof,
        [&](std::string_view line) {
          handle_line(line);
          // Stop taking commands once their replies would exceed the bounds; the rest of the input
          // stays in the kernel and the connection buffer until there is room (update_reading).
          return has_room();
        },
        &consumed, &oversize);
  }
  held_ = stop == LineStop::kStopped;
  // An unterminated line waits for its end; how long is bounded by limits.line_timeout_ms. The clock
  // is that line's: when lines were completed here, the one left over is a new one (a client
  // streaming commands has a line in pieces after almost every read, but never the same one).
  if (stop == LineStop::kNeedMore && consumed < data.size() && !at_eof) {
    if (partial_since_ == Clock::time_point{} || consumed > 0) partial_since_ = Clock::now();
  } else {
    partial_since_ = {};
  }
  if (stop == LineStop::kOversize) {
    ctx_.log.write(tag_, '<', oversize, " [line over the limit, truncated]");
    reply_invalid(oversize);
    finishing_ = true;
  }
  in_batch_ = false;
  if (batch_replies_) ctx_.metrics.latency.observe(std::chrono::steady_clock::now() - batch_start_, batch_replies_);
  flush();
  update_reading();
  if (finishing_) maybe_finish();
  return consumed;
}

void ClientSession::log_entry(char dir, std::string_view text1, std::string_view text2) {
  if (in_batch_) {
    ctx_.log.write_at(batch_wall_, tag_, dir, text1, text2);
  } else {
    ctx_.log.write(tag_, dir, text1, text2);
  }
}

void ClientSession::handle_line(std::string_view line) {
  protocol::Command cmd = protocol::parse_command(line);
  if (cmd.kind == protocol::CommandKind::kEmpty) return;
  log_entry('<', line);
  switch (cmd.kind) {
    case protocol::CommandKind::kIamat: {
      const protocol::Iamat& iamat = cmd.iamat;
      // The server's time of the record is when its burst was read.
      const protocol::Timestamp now = protocol::timestamp_of(batch_wall_);
      if (const char* why = refusal(ctx_.server.limits(), iamat.client_id, iamat.time, now)) {
        log_entry('!', why);
        break;  // answered with `? `
      }
      // The AT line is written once, where it goes: at the end of the output when its reply leaves
      // with this burst (nothing queued ahead of it, no wait for the disk), as nearly always, so that
      // the table and the log take it from there; else aside, for the reply queue.
      const Persistence* disk = ctx_.server.persistence;
      const bool in_output = pending_.empty() && (!disk || !disk->replies_wait());
      std::string& line_to = in_output ? out_ : scratch_;
      if (!in_output) scratch_.clear();
      const size_t line_start = line_to.size();
      const protocol::RecordForm record = protocol::append_at_line(line_to, ctx_.server.self.name, now, iamat);
      std::string stored;
      FloodRouter::Result r =
          ctx_.server.router.offer(iamat.client_id, iamat.time, record, LocationTable::Source::kClient, {}, {}, &stored);
      bool answered = true;
      if (r.stored) {
        if (in_output) {
          log_entry('>', record.record());
          out_.push_back('\n');
        } else {
          answered = reply_when_durable(scratch_, r.seq);
        }
        ctx_.metrics.command(CommandKind::kIamat, CommandResult::kOk);
        ctx_.metrics.recent.add(iamat.client_id, ctx_.server.self.name, iamat.location_text,
                                protocol::unix_ms_of(batch_wall_));
      } else {
        // The answer is the record that won, which may itself be waiting for the disk.
        line_to.resize(line_start);
        answered = reply_when_durable(stored, ctx_.server.backlog.next_seq() - 1);
        ctx_.metrics.command(CommandKind::kIamat, CommandResult::kStale);
      }
      if (answered) ++batch_replies_;
      return;
    }
    case protocol::CommandKind::kWhatsat: {
      std::string record;
      protocol::Location where;
      auto query = [&] {
        return places::PlacesQuery{where.lat, where.lng, cmd.whatsat.radius_km * 1000.0, cmd.whatsat.bound};
      };
      bool known;
      if (pending_.empty()) {
        // No reply waits ahead of this one: a provider that can answer at once (offline) writes
        // its JSON straight into the output after the record, with no copy of either.
        size_t start = out_.size();
        known = ctx_.server.table.lookup(cmd.whatsat.client_id, &out_, &where);
        if (known) {
          size_t record_end = out_.size();
          out_.push_back('\n');
          if (ctx_.server.places.answer_now(query(), out_)) {
            ctx_.metrics.command(CommandKind::kWhatsat, CommandResult::kOk);
            log_entry('>', std::string_view(out_).substr(start));
            out_.append("\n\n");
            ++batch_replies_;
            return;
          }
          record.assign(out_, start, record_end - start);
          out_.resize(start);
        }
      } else {
        known = ctx_.server.table.lookup(cmd.whatsat.client_id, &record, &where);
      }
      if (!known) {
        ctx_.metrics.command(CommandKind::kWhatsat, CommandResult::kUnknownClient);
        reply_invalid(line);
        ++batch_replies_;
        return;
      }
      ctx_.metrics.command(CommandKind::kWhatsat, CommandResult::kOk);
      uint64_t seq = next_seq_++;
      pending_.push_back(Pending{seq, false, {}, batch_start_});
      places::PlacesQuery q = query();
      LoopContext* ctx = &ctx_;
      uint64_t id = id_;
      ctx_.server.places.nearby(
          ctx_.loop, q,
          [ctx, id, seq, record = std::move(record)](std::string json) {
            auto it = ctx->clients.find(id);
            if (it == ctx->clients.end()) return;  // the client left before its answer came
            std::string bytes;
            protocol::append_places_reply(bytes, record, json);
            it->second->complete(seq, std::move(bytes));
          },
          [ctx, id] { return ctx->clients.count(id) != 0; });  // an upstream call nobody waits for is dropped
      return;
    }
    default:
      break;
  }
  // Unknown verbs, bad fields, and AT lines (peers only) on a client port.
  ctx_.metrics.command(CommandKind::kInvalid, CommandResult::kError);
  reply_invalid(line);
  ++batch_replies_;
}

std::string& ClientSession::reply_slot() {
  if (pending_.empty()) return out_;
  pending_.push_back(Pending{next_seq_++, true, {}});
  return pending_.back().bytes;
}

void ClientSession::reply(std::string_view line) {
  if (pending_.empty()) log_entry('>', line);
  reply_slot().append(line).push_back('\n');
}

void ClientSession::reply_invalid(std::string_view line) {
  const bool now = pending_.empty();
  std::string& to = reply_slot();
  const size_t start = to.size();
  protocol::append_invalid(to, line);
  if (now) log_entry('>', std::string_view(to).substr(start, to.size() - start - 1));
}

bool ClientSession::reply_when_durable(std::string_view line, uint64_t seq) {
  Persistence* disk = ctx_.server.persistence;
  if (!disk || !disk->replies_wait() || seq <= disk->durable()) {
    reply(line);
    return true;
  }
  // fsync: always: the answer waits for the record's group commit, in the reply queue like a
  // WHATSAT waiting for its places, so replies stay in command order. The reply's bytes wait here,
  // in the session, so that a client that leaves takes them along.
  Pending& p = pending_.emplace_back(Pending{next_seq_++, false, std::string(line), batch_start_, seq});
  p.bytes.push_back('\n');
  watch_durable();
  return false;
}

void ClientSession::watch_durable() {
  if (durable_armed_) return;  // its wake-up looks at every waiting reply, this one included
  uint64_t lowest = UINT64_MAX;
  for (const Pending& p : pending_) {
    if (p.durable_seq != 0 && !p.ready) lowest = std::min(lowest, p.durable_seq);
  }
  if (lowest == UINT64_MAX) return;
  LoopContext* ctx = &ctx_;
  uint64_t id = id_;
  durable_armed_ = true;
  durable_watch_ = lowest;
  durable_ticket_ = ctx_.server.persistence->when_durable(ctx_.loop, lowest, [ctx, id] {
    auto it = ctx->clients.find(id);
    if (it == ctx->clients.end()) return;  // the client left meanwhile
    it->second->on_durable();
  });
}

void ClientSession::on_durable() {
  durable_armed_ = false;
  durable_ticket_ = 0;
  const uint64_t durable = ctx_.server.persistence->durable();
  const auto now = std::chrono::steady_clock::now();
  for (Pending& p : pending_) {
    if (p.durable_seq != 0 && !p.ready && p.durable_seq <= durable) {
      ctx_.metrics.latency.observe(now - p.since);
      p.ready = true;
    }
  }
  watch_durable();
  release_ready();
  after_completion();
}

void ClientSession::complete(uint64_t seq, std::string bytes) {
  for (auto& p : pending_) {
    if (p.seq == seq) {
      ctx_.metrics.latency.observe(std::chrono::steady_clock::now() - p.since);
      p.bytes = std::move(bytes);
      p.ready = true;
      break;
    }
  }
  release_ready();
  after_completion();
}

void ClientSession::after_completion() {
  if (in_batch_) return;
  flush();
  update_reading();
  maybe_finish();
}

void ClientSession::release_ready() {
  while (!pending_.empty() && pending_.front().ready) {
    std::string_view bytes = pending_.front().bytes;
    std::string_view logged = bytes;
    while (!logged.empty() && logged.back() == '\n') logged.remove_suffix(1);
    log_entry('>', logged);
    out_.append(bytes);
    pending_.pop_front();
  }
}

void ClientSession::flush() {
  release_ready();
  if (out_.empty()) return;
  sent_total_ += out_.size();
  conn_.send(out_);
  out_.clear();
  if (out_.capacity() > kKeepOutCapacity) std::string().swap(out_);
}

bool ClientSession::has_room() const {
  // Past the server's budget for buffered bytes, the clients holding the most output stop first.
  const size_t bound = std::min(ctx_.server.limits().max_output_bytes, ctx_.server.admission.output_allowance());
  return pending_.size() < ctx_.server.limits().max_pending_replies && out_.size() + conn_.pending_output() <= bound;
}

void ClientSession::update_reading() {
  update_read_size();
  const bool room = has_room();
  conn_.set_reading(room && !finishing_ && !eof_);
  if (!room || finishing_ || !held_ || resume_queued_) return;
  // Commands were left unread because of the bounds and there is room again: offer them once more,
  // at the end of the iteration (never from inside the call that is still walking them).
  held_ = false;
  if (!eof_) {
    conn_.redispatch();
    return;
  }
  resume_queued_ = true;
  LoopContext* ctx = &ctx_;
  uint64_t id = id_;
  ctx_.loop.defer([ctx, id] {
    auto it = ctx->clients.find(id);
    if (it == ctx->clients.end()) return;
    it->second->resume_queued_ = false;
    if (it->second->conn_.is_open()) it->second->resume_after_eof();
  });
}

void ClientSession::maybe_finish() {
  if (!finishing_ || !pending_.empty() || !conn_.is_open()) return;
  conn_.close_when_flushed(eof_ ? "client closed its side" : "line over the limit");
}

void ClientSession::on_drained(reactor::Connection&) { update_reading(); }

void ClientSession::check_deadlines(Clock::time_point now) {
  if (!conn_.is_open()) return;
  const Limits& limits = ctx_.server.limits();
  auto past = [now](Clock::time_point since, int64_t ms) {
    return ms > 0 && since != Clock::time_point{} && now - since > std::chrono::milliseconds(ms);
  };
  if (past(partial_since_, limits.line_timeout_ms)) {
    conn_.close("line timeout: an incomplete line held for over " + std::to_string(limits.line_timeout_ms) + " ms");
    return;
  }
  const size_t unsent = conn_.pending_output();
  // Progress is bytes the kernel took from us, or bytes the client acknowledged from the kernel's
  // queue: a slow reader makes some every sweep, one that does not read makes none.
  const uint64_t taken = sent_total_ - unsent;
  if (unsent == 0) {
    stalled_since_ = {};
    written_seen_ = taken;
  } else {
    // Only a client with output waiting costs a system call here: a loop sweeping ten thousand
    // idle clients must not stall the busy ones.
    const int64_t unacked = reactor::unacked_bytes(conn_.fd());
    if (taken != written_seen_ || unacked != unacked_seen_ || stalled_since_ == Clock::time_point{}) {
      written_seen_ = taken;  // progress (or the first stall): the clock starts again
      unacked_seen_ = unacked;
      stalled_since_ = now;
    } else if (past(stalled_since_, limits.write_timeout_ms)) {
      conn_.close("write timeout: the client took none of " + std::to_string(unsent) + " bytes for over " +
                  std::to_string(limits.write_timeout_ms) + " ms");
      return;
    }
  }
  if (unsent == 0 && pending_.empty() && past(last_input_, limits.idle_timeout_ms)) {
    conn_.close("idle timeout: nothing received for over " + std::to_string(limits.idle_timeout_ms) + " ms");
    return;
  }
  // Held back by the bounds (the server-wide budget moves without this client doing anything):
  // read again if there is room now.
  if (!conn_.reading()) update_reading();
}

void ClientSession::on_closed(reactor::Connection&, std::string_view reason) {
  ctx_.log.write(tag_, '-', reason);
  if (durable_armed_) {
    ctx_.server.persistence->cancel_durable(ctx_.loop, durable_watch_, durable_ticket_);
    durable_armed_ = false;
  }
  ctx_.server.admission.release(Admission::Port::kClient);
  LoopContext* ctx = &ctx_;
  uint64_t id = id_;
  ctx_.loop.defer([ctx, id] { ctx->clients.erase(id); });
}

}  // namespace herd
