// CatchUpSender: what one peer link writes to its neighbour, and when. On each new connection it says
// `HERD <own name>` and `SYNC <run> <earlier runs>` (this server's history), then streams the backlog
// entries owed to the neighbour from its cursor (live flooding). A neighbour that speaks catch-up
// answers `SYNC-FROM <run> <seq>` (how far it holds this server's history); the sender then either
// rewinds its cursor to just after that seq and replays the backlog from there, skipping versions a
// newer record has replaced since (the common case: a
// brief disconnect, records lost in a connection that failed, a neighbour restarted with its
// data_dir), or, when the backlog no longer reaches back that far or the run is unknown (a neighbour
// restarted empty), sends the whole table in bounded chunks while live records keep flowing. Catch-up
// records go in `BULK <n>` frames; once the catch-up is complete, and then at most every
// kMarkInterval, a `MARK <seq>` line tells the neighbour how far it now holds this server's history.
// Until the answer comes (or for kAnswerWait), nothing is sent, so that what waited in the backlog
// while the link was down crosses it once. A neighbour that never answers (the asyncio reference)
// then simply gets the live stream from where its last connection stopped, and a full transfer if it
// ever falls so far behind that the backlog no longer holds its position. An answer that comes after
// kAnswerWait (a round trip over a second) is still taken, and what the live stream carried on this
// connection meanwhile is not replayed again (plain_from_, skip_to_).
//
// Backpressure: nothing more is taken from the backlog while kMaxUnsentBytes are unsent, full-transfer
// chunks wait while kScanHighWater are, a full transfer goes at most kScanBytesPerSecond (so that the
// receiver's work, a line per record, does not crowd out both servers' clients on a small machine:
// a million records of the benchmark take under three seconds), and one loop turn writes at most kMaxBytesPerTurn before
// yielding to the loop's other connections.
//
// Threads: the owning link's loop thread only. The cursor outlives connections (it is the resume point
// for a neighbour that does not speak catch-up).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "herd/flood_log.h"
#include "herd/location_table.h"
#include "herd/metrics.h"
#include "reactor/connection.h"
#include "reactor/event_loop.h"

namespace herd {

struct LoopContext;

class CatchUpSender {
 public:
  static constexpr size_t kMaxUnsentBytes = 4 * 1024 * 1024;
  static constexpr size_t kScanHighWater = 1024 * 1024;
  static constexpr size_t kReadBytes = 64 * 1024;
  static constexpr size_t kScanChunkBytes = 16 * 1024;
  static constexpr size_t kMaxBytesPerTurn = 64 * 1024;
  static constexpr size_t kScanBytesPerSecond = 32 * 1024 * 1024;
  static constexpr std::chrono::milliseconds kScanWindow{10};  // the pace is kept per window
  static constexpr size_t kMaxAnswerLine = 256;
  static constexpr std::chrono::milliseconds kMarkInterval{100};
  static constexpr std::chrono::milliseconds kAnswerWait{1000};
  // A link that is owed nothing is not woken by the backlog; it still reads on (past what others are
  // owed) and MARKs this often, so that its neighbour's idea of how far it holds this server's history
  // stays recent and a later reconnect can resume by replay.
  static constexpr std::chrono::milliseconds kIdleMarkInterval{1000};

  // `bit`: the link's bit in the backlog's mask. `wake`: asks the link to call pump() again soon (from
  // a timer of this sender; the link calls pump() only while connected).
  // The sender of a link on the loop of `ctx`.
  CatchUpSender(LoopContext& ctx, const std::string& peer, uint64_t bit, std::function<void()> wake);
  ~CatchUpSender();
  CatchUpSender(const CatchUpSender&) = delete;
  CatchUpSender& operator=(const CatchUpSender&) = delete;

  // A new connection to the neighbour can carry bytes: hello, SYNC, then whatever is owed.
  void start(reactor::Connection& c);
  // Bytes the neighbour wrote back; returns how many were consumed. Closes `c` on garbage.
  size_t on_data(reactor::Connection& c, std::string_view data);
  // Writes what is owed, within the bounds above.
  void pump(reactor::Connection& c);
  // The connection is gone (or the link stops): timers are cancelled; the cursor stays.
  void stop();

  // For tests and logs: the next backlog seq this link will look at.
  uint64_t cursor_seq() const { return cursor_.seq; }
  // Nothing is left to send: the cursor has caught up with the backlog and no full transfer is under
  // way (what `c` itself still buffers is the caller's to check).
  bool caught_up() const { return !scanning_ && cursor_.seq >= backlog_.next_seq(); }

  // Any thread, for scrapes: records written to the neighbour (live, replayed and full-transfer
  // alike), full transfers begun, and the cursor's seq as of the last loop step that moved it.
  uint64_t records_sent() const { return sent_.get(); }
  uint64_t full_transfers() const { return full_transfers_.get(); }
  uint64_t published_cursor_seq() const { return published_cursor_.load(std::memory_order_relaxed); }

 private:
  void on_line(reactor::Connection& c, std::string_view line);
  void begin_full(std::string_view why);
  void send_entries(reactor::Connection& c);  // raw_: catch-up (BULK) and live lines
  void send_live(reactor::Connection& c);     // live_ as it is
  size_t send_scan_chunk(reactor::Connection& c);
  void maybe_mark(reactor::Connection& c);
  void finish_catch_up();
  // Calls wake_ after `delay`, through *timer (one pending at a time per timer).
  void schedule_pump(reactor::EventLoop::TimerId* timer, std::chrono::milliseconds delay);
  void publish_cursor() { published_cursor_.store(cursor_.seq, std::memory_order_relaxed); }

  LoopContext& ctx_;
  reactor::EventLoop& loop_;
  const std::string& peer_;
  const uint64_t bit_;
  std::function<void()> wake_;
  FloodLog& backlog_;

  FloodLog::Cursor cursor_;
  // Per connection:
  bool sync_peer_ = false;       // the neighbour answered SYNC-FROM
  bool awaiting_answer_ = false; // SYNC sent, no answer yet and kAnswerWait not over: send nothing
  // The answer was not in by kAnswerWait (a reference server, or a round trip over a second): the
  // live stream began on this connection at seq plain_from_. If the answer comes after all, what went
  // out since then is on its way to the neighbour on this very connection: the replay covers only
  // what the neighbour lacks before plain_from_, and then the cursor goes on from skip_to_ (where the
  // live stream had got to), instead of sending all of it twice.
  bool plain_ = false;
  bool plain_full_ = false;      // and a full transfer began on it (the cursor had left the backlog)
  uint64_t plain_from_ = 0;
  uint64_t skip_to_ = 0;         // 0: no jump after the replay
  uint64_t replay_end_ = 0;      // backlog entries below this seq are catch-up (sent in BULK frames)
  bool replay_everything_ = false;  // the replay ignores the mask (SYNC-FROM ... ALL)
  bool scanning_ = false;        // a full transfer of the table is under way
  LocationTable::ScanPosition scan_pos_;
  uint64_t scan_from_ = 0;       // the backlog seq when the full transfer began (records stamped above: live)
  std::chrono::steady_clock::time_point scan_window_{};  // the current pacing window's start
  size_t scan_window_bytes_ = 0;                         // full-transfer bytes sent in it
  bool catching_up_ = false;     // a replay or full transfer is not complete yet
  std::chrono::steady_clock::time_point catch_up_started_{};
  uint64_t catch_up_records_ = 0;
  uint64_t catch_up_bytes_ = 0;
  uint64_t catch_up_skipped_ = 0;  // replayed versions a newer record had replaced
  bool marked_ = false;          // a MARK went out on this connection
  bool records_since_mark_ = false;  // the cursor passed a record entry since that MARK
  uint64_t last_mark_ = 0;
  std::chrono::steady_clock::time_point last_mark_time_{};
  reactor::EventLoop::TimerId turn_timer_ = 0;  // a pump on the next turn (this turn's budget is spent)
  reactor::EventLoop::TimerId mark_timer_ = 0;  // a pump when the next MARK is due
  reactor::EventLoop::TimerId answer_timer_ = 0;  // the end of kAnswerWait
  reactor::EventLoop::TimerId idle_timer_ = 0;    // every kIdleMarkInterval, for a sync peer

  Counter sent_;            // written on the loop thread
  Counter full_transfers_;  // written on the loop thread
  std::atomic<uint64_t> published_cursor_{0};  // written on the loop thread

  std::string raw_;    // backlog entries read
  std::string bulk_;   // catch-up records of this step
  std::string live_;   // live records of this step
  std::string chunk_;  // a full-transfer chunk
};

}  // namespace herd
