// CatchUpSender implementation.
#include "herd/catch_up_sender.h"

#include <algorithm>

#include "herd/line_splitter.h"
#include "herd/loop_context.h"
#include "herd/sync_state.h"
#include "protocol/fields.h"
#include "protocol/sync_line.h"

namespace herd {
namespace {

int64_t ms_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

CatchUpSender::CatchUpSender(LoopContext& ctx, const std::string& peer, uint64_t bit, std::function<void()> wake)
    : ctx_(ctx),
      loop_(ctx.loop),
      peer_(peer),
      bit_(bit),
      wake_(std::move(wake)),
      backlog_(ctx.server.backlog) {
  // Records stored from now on are owed; what the backlog held before (reloaded from disk) is sent
  // only to a neighbour that asks for it through catch-up.
  cursor_ = backlog_.cursor_at(backlog_.next_seq());
  publish_cursor();
}

CatchUpSender::~CatchUpSender() = default;

void CatchUpSender::start(reactor::Connection& c) {
  stop();
  sync_peer_ = false;
  replay_end_ = 0;
  replay_everything_ = false;
  scanning_ = false;
  catching_up_ = false;
  marked_ = false;
  records_since_mark_ = false;
  plain_ = plain_full_ = false;
  plain_from_ = skip_to_ = 0;
  std::string hello = "HERD " + ctx_.server.self.name + "\n";
  ctx_.server.sync.append_sync_line(hello);
  ctx_.log.write_each_line(peer_, '>', hello);
  c.send(hello);
  awaiting_answer_ = true;
  answer_timer_ = loop_.run_after(kAnswerWait, [this] {
    answer_timer_ = 0;
    awaiting_answer_ = false;
    plain_ = true;
    plain_from_ = cursor_.seq;
    ctx_.log.write(peer_, '*', "no catch-up answer: plain flooding from where the link stopped");
    wake_();
  });
}

void CatchUpSender::stop() {
  for (auto* t : {&turn_timer_, &mark_timer_, &answer_timer_, &idle_timer_}) {
    if (*t) loop_.cancel(*t);
    *t = 0;
  }
}

size_t CatchUpSender::on_data(reactor::Connection& c, std::string_view data) {
  size_t consumed = 0;
  std::string_view oversize;
  LineStop stop = split_lines(
      data, kMaxAnswerLine, false,
      [&](std::string_view line) {
        on_line(c, line);
        return c.is_open();
      },
      &consumed, &oversize);
  if (stop == LineStop::kOversize) {
    ctx_.log.write(peer_, '!', "the neighbour wrote a line over ", std::to_string(kMaxAnswerLine) + " bytes");
    c.close("neighbour wrote garbage on the link");
    return data.size();
  }
  return consumed;
}

void CatchUpSender::on_line(reactor::Connection& c, std::string_view line) {
  const LoopLog& log = ctx_.log;
  protocol::SyncLine s = protocol::parse_sync_line(line);
  if (s.kind == protocol::SyncKind::kNone && line.find_first_not_of(" \t\r") == std::string_view::npos) return;
  log.write(peer_, '<', line);
  if (s.kind != protocol::SyncKind::kSyncFrom) {
    log.write(peer_, '!', "not a SYNC-FROM line; ignored");
    return;
  }
  sync_peer_ = true;
  awaiting_answer_ = false;
  if (answer_timer_) loop_.cancel(answer_timer_);
  answer_timer_ = 0;
  if (!idle_timer_) idle_timer_ = loop_.run_every(kIdleMarkInterval, [this] { wake_(); });
  catching_up_ = true;
  catch_up_started_ = std::chrono::steady_clock::now();
  catch_up_records_ = catch_up_bytes_ = catch_up_skipped_ = 0;
  const uint64_t oldest = backlog_.oldest_seq();
  const uint64_t next = backlog_.next_seq();
  std::optional<uint64_t> resume;
  if (s.run != "-") resume = ctx_.server.sync.resume_point(s.run, s.number);
  // No neighbour can hold a record this run has not stored yet (nor 2^64-1, whose successor wraps
  // to 0): such an answer is confused or forged, where the neighbour stands is unknown, and it gets
  // everything rather than nothing. Tested before `*resume + 1` is.
  const bool beyond = resume && *resume >= next;
  if ((!resume || beyond || *resume + 1 < oldest) && plain_full_) {
    // A late answer asking for what the live stream on this connection already began (or even
    // finished): a full transfer (the cursor had left the backlog). It goes on rather than starting over.
    log.write(peer_, '*', "catch-up: the full transfer begun on this connection goes on (the answer came late)");
  } else if (!resume) {
    begin_full(s.run == "-" ? "it holds none of our history" : "it holds a run of ours we no longer know");
  } else if (beyond) {
    begin_full("it claims our seq " + std::to_string(*resume) + "; the last we stored is " + std::to_string(next - 1));
  } else if (*resume + 1 < oldest) {
    begin_full("the backlog no longer reaches back to seq " + std::to_string(*resume + 1) +
               " (oldest " + std::to_string(oldest) + ")");
  } else if (plain_ && !s.everything && !scanning_) {
    // A late answer: the records from plain_from_ to the cursor went out on this connection since
    // kAnswerWait ran out, and the neighbour reads them after this answer. Replay only what it lacks
    // before them, then go on from the cursor. (A neighbour that restarted wants everything: below.)
    const uint64_t from = std::min(*resume + 1, plain_from_);
    const uint64_t live_at = cursor_.seq;
    replay_end_ = plain_from_;
    replay_everything_ = false;
    if (from < plain_from_) {
      cursor_ = backlog_.cursor_at(from);
      skip_to_ = live_at;
    }
    log.write(peer_, '*', "catch-up: replaying backlog seqs " + std::to_string(from) + ".." +
                                      std::to_string(plain_from_) + " (it holds ours up to " +
                                      std::to_string(*resume) + "; the answer came late, seqs " +
                                      std::to_string(plain_from_) + ".." + std::to_string(live_at) +
                                      " already went out on this connection)");
  } else {
    uint64_t from = std::min(*resume + 1, next);
    scanning_ = false;
    skip_to_ = 0;
    cursor_ = backlog_.cursor_at(from);
    replay_end_ = next;
    replay_everything_ = s.everything;
    log.write(peer_, '*', "catch-up: replaying backlog seqs " + std::to_string(from) + ".." +
                                      std::to_string(next) + " (it holds ours up to " +
                                      std::to_string(*resume) + ")" +
                                      (s.everything ? ", every current record: it restarted" : ""));
  }
  publish_cursor();
  pump(c);
}

void CatchUpSender::begin_full(std::string_view why) {
  scanning_ = true;
  scan_pos_ = {};
  skip_to_ = 0;
  if (plain_ && !sync_peer_) plain_full_ = true;
  cursor_ = backlog_.cursor_at(backlog_.next_seq());
  replay_end_ = cursor_.seq;
  replay_everything_ = false;
  publish_cursor();
  full_transfers_.add();
  // What is stored from now on goes live (if owed): the scan leaves it out.
  scan_from_ = cursor_.seq;
  if (!catching_up_ && sync_peer_) {
    catching_up_ = true;
    catch_up_started_ = std::chrono::steady_clock::now();
    catch_up_records_ = catch_up_bytes_ = catch_up_skipped_ = 0;
  }
  ctx_.log.write(peer_, '*', "catch-up: full transfer of the table (", std::string(why) + ")");
}

void CatchUpSender::pump(reactor::Connection& c) {
  if (!c.is_open() || awaiting_answer_) return;
  size_t spent = 0;
  bool more = false;
  while (c.is_open() && c.pending_output() <= kMaxUnsentBytes) {
    if (spent >= kMaxBytesPerTurn) {
      more = true;  // yield to the loop's other connections; go on next turn
      break;
    }
    if (skip_to_ && cursor_.seq >= replay_end_) {
      // The replay of a late answer is done: what follows went out live already.
      if (skip_to_ > cursor_.seq) cursor_ = backlog_.cursor_at(skip_to_);
      skip_to_ = 0;
    }
    raw_.clear();
    const uint64_t at = cursor_.seq;
    FloodLog::ReadStatus st;
    size_t looked_at = 0;
    if (at >= replay_end_) {
      // Live: the owed lines only, straight into the batch.
      live_.clear();
      uint64_t owed = 0, records = 0;
      st = backlog_.read_owed(&cursor_, bit_, &live_, kReadBytes, &looked_at, &owed, &records);
      sent_.add(owed);  // herd_peer_records_flooded_total
      if (records) records_since_mark_ = true;
    } else {
      // A replay of everything (the neighbour lost what it held) needs entries not owed to this link
      // too: read as a reader of everything, so that losing any of them to eviction is noticed
      // (kBehind: a full transfer) instead of skipped.
      st = backlog_.read(&cursor_, &raw_, kReadBytes, replay_everything_ ? FloodLog::kEverything : bit_);
      looked_at = raw_.size();
      if (looked_at) records_since_mark_ = true;  // (a replay: a MARK is owed when it ends)
    }
    if (st == FloodLog::ReadStatus::kBehind) {
      begin_full("we fell behind: backlog seqs " + std::to_string(at) + ".." +
                 std::to_string(backlog_.oldest_seq()) + " were evicted before they were sent");
      continue;
    }
    if (looked_at) {
      spent += looked_at;
      if (at >= replay_end_) {
        send_live(c);
      } else {
        send_entries(c);
      }
      continue;
    }
    if (scanning_) {
      if (c.pending_output() > kScanHighWater) break;  // on_drained pumps again
      const auto now = std::chrono::steady_clock::now();
      if (now - scan_window_ >= kScanWindow) {
        scan_window_ = now;
        scan_window_bytes_ = 0;
      }
      constexpr size_t kPerWindow = kScanBytesPerSecond / (1000 / kScanWindow.count());
      if (scan_window_bytes_ >= kPerWindow) {  // paced: go on in the next window
        auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(kScanWindow - (now - scan_window_));
        schedule_pump(&turn_timer_, std::max(wait, std::chrono::milliseconds(1)));
        break;
      }
      size_t n = send_scan_chunk(c);
      scan_window_bytes_ += n;
      spent += n;
      continue;
    }
    break;
  }
  publish_cursor();
  if (c.is_open()) maybe_mark(c);
  if (more) schedule_pump(&turn_timer_, std::chrono::milliseconds(0));
}

void CatchUpSender::send_entries(reactor::Connection& c) {
  bulk_.clear();
  live_.clear();
  uint64_t bulk_count = 0;
  std::string_view raw = raw_;
  FloodLog::Entry e;
  LocationTable& table = ctx_.server.table;
  uint64_t live_count = 0;
  while (FloodLog::next_entry(&raw, &e)) {
    if (e.kind != FloodLog::Kind::kRecord) continue;
    // A neighbour that restarted from its data_dir gets, in the replay, also what it had sent us or
    // had through others (it may have lost it); the live stream only what is owed to it.
    if (!(e.mask & bit_) && !(replay_everything_ && e.seq < replay_end_)) continue;
    // After the replay of a late answer: these went out live on this connection already.
    if (skip_to_ && e.seq >= replay_end_ && e.seq < skip_to_) continue;
    if (e.seq < replay_end_) {
      // A replay sends only versions that are still current: a newer record of the client is
      // later in the backlog, or was not owed to this neighbour (it came from it, or another server
      // took it there), and either way supersedes this one.
      std::string_view f[7];
      std::string_view line = e.line;
      if (protocol::split_fields(e.line, f, 7) >= 6) {
        const std::string_view record =
            e.line.substr(0, static_cast<size_t>(f[5].data() + f[5].size() - e.line.data()));
        if (!table.holds(f[3], record)) {
          ++catch_up_skipped_;
          continue;
        }
        // A neighbour that lost its history may have lost this record too, and then it is the only
        // server left to pass it on: the seen= set (which may name itself and neighbours the record
        // never reached) is dropped, so that it floods the record as it would a full transfer's.
        if (replay_everything_) line = record;
      }
      bulk_.append(line).push_back('\n');
      ++bulk_count;
    } else {
      live_.append(e.line).push_back('\n');
      ++live_count;
    }
  }
  sent_.add(bulk_count + live_count);
  if (bulk_count) {
    catch_up_records_ += bulk_count;
    catch_up_bytes_ += bulk_.size();
    if (sync_peer_) {
      std::string header;
      protocol::append_bulk(header, bulk_count);
      ctx_.log.write(peer_, '>', std::string_view(header).substr(0, header.size() - 1),
                          " (catch-up records from the backlog)");
      c.send(header);
    }
    c.send(bulk_);
  }
  send_live(c);
  if (bulk_.capacity() > 2 * kReadBytes) std::string().swap(bulk_);
}

void CatchUpSender::send_live(reactor::Connection& c) {
  if (!live_.empty()) {
    ctx_.log.write_each_line(peer_, '>', live_);
    c.send(live_);
  }
  live_.clear();
  if (live_.capacity() > 2 * kReadBytes) std::string().swap(live_);
}

size_t CatchUpSender::send_scan_chunk(reactor::Connection& c) {
  chunk_.clear();
  size_t n = ctx_.server.table.scan(&scan_pos_, &chunk_, kScanChunkBytes, scan_from_);
  if (n) {
    catch_up_records_ += n;
    catch_up_bytes_ += chunk_.size();
    if (sync_peer_) {
      std::string header;
      protocol::append_bulk(header, n);
      ctx_.log.write(peer_, '>', std::string_view(header).substr(0, header.size() - 1),
                          " (catch-up records from the table)");
      c.send(header);
    }
    c.send(chunk_);
    sent_.add(n);
  }
  size_t sent = chunk_.size();
  if (chunk_.capacity() > 2 * kScanChunkBytes) std::string().swap(chunk_);
  if (scan_pos_.done) {
    scanning_ = false;
    if (!sync_peer_) {
      ctx_.log.write(peer_, '*', "full transfer sent: ", std::to_string(catch_up_records_) + " records");
    }
  }
  return sent;
}

void CatchUpSender::finish_catch_up() {
  catching_up_ = false;
  ctx_.log.write(peer_, '*',
                      "catch-up sent: " + std::to_string(catch_up_records_) + " records, " +
                          std::to_string(catch_up_bytes_) + " bytes in " +
                          std::to_string(ms_since(catch_up_started_)) + " ms (" +
                          std::to_string(catch_up_skipped_) + " replaced versions skipped)");
}

void CatchUpSender::maybe_mark(reactor::Connection& c) {
  // A MARK promises that everything owed up to its seq was sent: not while a replay or a full
  // transfer is still under way.
  if (!sync_peer_ || scanning_ || cursor_.seq < replay_end_) return;
  const uint64_t through = cursor_.seq - 1;
  bool now = false;
  if (catching_up_) {
    finish_catch_up();
    now = true;
  }
  // Nothing but progress entries since the last MARK (each neighbour's MARK is one, here): none is
  // due, or two idle neighbours with data directories would MARK each other's MARKs for ever.
  if (!now && marked_ && (through == last_mark_ || !records_since_mark_)) return;
  auto t = std::chrono::steady_clock::now();
  if (!now && marked_ && t - last_mark_time_ < kMarkInterval) {
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(kMarkInterval - (t - last_mark_time_));
    schedule_pump(&mark_timer_, wait + std::chrono::milliseconds(1));
    return;
  }
  std::string mark;
  protocol::append_mark(mark, through);
  ctx_.log.write(peer_, '>', std::string_view(mark).substr(0, mark.size() - 1));
  c.send(mark);
  marked_ = true;
  records_since_mark_ = false;
  last_mark_ = through;
  last_mark_time_ = t;
}

void CatchUpSender::schedule_pump(reactor::EventLoop::TimerId* timer, std::chrono::milliseconds delay) {
  if (*timer) return;
  *timer = loop_.run_after(delay, [this, timer] {
    *timer = 0;
    wake_();
  });
}

}  // namespace herd
