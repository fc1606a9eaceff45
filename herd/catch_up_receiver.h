// CatchUpReceiver: the catch-up side of one inbound peer connection (see CatchUpSender for the other).
// It answers the neighbour's `SYNC` with `SYNC-FROM <run> <seq>` (how far this server holds that
// neighbour's history: the one line an acceptor ever writes), counts the record lines of `BULK <n>`
// frames (stored and flooded on like any record, but logged as one summary), and turns each `MARK
// <seq>` into this server's knowledge of how far it holds the neighbour's history (SyncState, and the
// backlog for persistence). The first MARK after a SYNC (or after BULK frames on a link that was
// already caught up: the neighbour fell behind and sent a full transfer) completes a catch-up, which
// is logged with its counts.
//
// Threads: the session's loop thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "reactor/connection.h"

namespace herd {

struct LoopContext;

class CatchUpReceiver {
 public:
  // For a session on the loop of `ctx`.
  explicit CatchUpReceiver(LoopContext& ctx) : ctx_(ctx) {}

  // Answers unsent to the neighbour, at most: a link reads its answer before anything else, so more
  // means a sender that repeats SYNC without reading (the connection is closed).
  static constexpr size_t kMaxUnsentAnswers = 64 * 1024;

  // Handles `line` when it is a catch-up line (SYNC, BULK, MARK; logged here); false when it is not
  // one. `peer` is the neighbour's name from the hello, `tag` the session's log tag.
  bool handle(reactor::Connection& c, std::string_view peer, std::string_view tag, std::string_view line);

  // True while record lines belong to a BULK frame (the session then does not log them one by one).
  bool in_bulk() const { return bulk_left_ > 0; }
  // The session handled one record line of a BULK frame; `stored`: it was newer than the table's.
  void took_bulk_line(bool stored);

 private:
  LoopContext& ctx_;
  std::string run_;            // the neighbour's run from its SYNC (empty: no SYNC yet)
  uint64_t bulk_left_ = 0;
  bool catching_up_ = false;   // between SYNC (or a first BULK) and the next MARK
  std::chrono::steady_clock::time_point started_{};
  uint64_t received_ = 0;
  uint64_t stored_ = 0;
};

}  // namespace herd
