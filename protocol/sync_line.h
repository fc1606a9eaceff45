// The catch-up lines of the peer protocol (see README "Catch-up"): parsing and formatting, pure.
//
//   SYNC <run> [<run>:<seq> ...]   dialler -> acceptor, after the hello: the dialler's history, its
//                                  current run first, then earlier runs, each with the last sequence
//                                  number of it that the dialler still holds.
//   SYNC-FROM <run> <seq> [ALL]    acceptor -> dialler (the one line an acceptor ever writes): how far
//                                  it holds the dialler's history; `SYNC-FROM - 0` for not at all.
//                                  ALL: the acceptor restarted from its data_dir and may have lost
//                                  records it had flooded or received: the replay after seq carries
//                                  every current record, not only those the dialler owes it.
//   BULK <n>                       the next n lines are catch-up records (stored and flooded on like
//                                  any record; logged as one summary instead of line by line).
//   MARK <seq>                     every record of the sender's history up to seq that it owes the
//                                  receiver has been sent before this line.
//
// A run is 1..32 bytes of [0-9a-zA-Z]; sequence numbers are decimal, below 2^64.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "protocol/fields.h"

namespace protocol {

enum class SyncKind {
  kNone,      // not a catch-up line (an AT record, or anything else)
  kSync,
  kSyncFrom,
  kBulk,
  kMark,
  kBad,       // a catch-up verb with fields that do not parse
};

// One earlier run of a history: its id and the last sequence number of it still held.
struct RunHead {
  std::string_view run;
  uint64_t seq = 0;
};

struct SyncLine {
  static constexpr size_t kMaxHistory = 8;  // earlier runs beyond this are not sent
  SyncKind kind = SyncKind::kNone;
  std::string_view run;   // SYNC: the current run; SYNC-FROM: the run held ("-" for none)
  uint64_t number = 0;    // SYNC-FROM: the seq held; BULK: the count; MARK: the seq
  bool everything = false;  // SYNC-FROM: ALL was given
  std::array<RunHead, kMaxHistory> history{};  // SYNC: earlier runs, newest first
  size_t history_size = 0;
};

inline constexpr size_t kMaxRunLength = 32;

// True when `run` is 1..kMaxRunLength bytes of ASCII letters and digits.
bool is_run_id(std::string_view run);

// Parses one line (without its ending). Views point into `line`; never allocates.
SyncLine parse_sync_line(std::string_view line);

// False for a line parse_sync_line() certainly reads as kNone, by its first bytes: most lines on a
// peer link are AT records, told apart without building a SyncLine. (Inline: every record received
// is asked, and the four-byte compares become one word's.)
inline bool may_be_sync_line(std::string_view line) {
  size_t start = 0;
  while (start < line.size() && is_space(static_cast<unsigned char>(line[start]))) ++start;
  const std::string_view head = line.substr(start, 4);
  return head == "SYNC" || head == "BULK" || head == "MARK";
}

// Formatting; each appends one line with its "\n". `history` runs beyond kMaxHistory are dropped.
void append_sync(std::string& out, std::string_view run, const RunHead* history, size_t history_size);
// run "-" for none; `everything` adds ALL.
void append_sync_from(std::string& out, std::string_view run, uint64_t seq, bool everything = false);
void append_bulk(std::string& out, uint64_t count);
void append_mark(std::string& out, uint64_t seq);

}  // namespace protocol
