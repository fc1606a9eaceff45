// Recovery: loading a server's data directory at start (README "Persistence").
//
// The directory <data_dir>/<name>/ holds:
//   snapshot                     the table (and how far this server held each neighbour's history)
//                                as of a point in its history: every record stored before seq
//                                `log_start` is in it
//   records-<16 hex digits>.log  the record log: every backlog entry from that seq on, in order (a
//                                new file at each start and at each rewrite)
//   snapshot.tmp                 a rewrite in progress (removed at start)
//   LOCK                         held (flock) by the running server
// Every file is a sequence of checksummed frames (herd/record_file.h) starting with a header frame.
//
// Rules: damage at the end of the last record log that no valid frame follows is a torn tail (a
// crash mid-write): it is cut off and the start goes on, with a log message. Any other damage (a
// snapshot that does not check out, a record log damaged before its end or not the last one, a file
// of another server, a gap inside a file) stops the start with a message naming the file and offset.
//
// Threads: called once, on the starting thread, before the loops exist.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <vector>

#include "herd/location_table.h"
#include "herd/sync_state.h"

namespace herd {

inline constexpr const char* kSnapshotFile = "snapshot";
inline constexpr const char* kSnapshotTmpFile = "snapshot.tmp";
inline constexpr const char* kLockFile = "LOCK";
// "records-<16 hex digits of the first seq>.log"
std::string record_log_name(uint64_t first_seq);

struct Recovered {
  uint64_t next_seq = 1;   // the first seq of the new run
  std::vector<SyncState::EarlierRun> history;  // earlier runs, newest first
  std::map<std::string, SyncState::Held> held; // how far this server held each neighbour's history
  // The newest backlog entries (FloodLog encoding, consecutive seqs from backlog_first_seq), at most
  // about the backlog's capacity, so that a neighbour that held this server's history can resume.
  std::deque<std::string> backlog;
  uint64_t backlog_first_seq = 0;
  uint64_t records_from_snapshot = 0;
  uint64_t entries_from_logs = 0;
  uint64_t snapshot_bytes = 0;
  uint64_t log_bytes = 0;                  // record log bytes after the snapshot's log_start
  std::vector<std::string> notes;          // what was repaired or worth knowing, for the log
};

// Loads `dir` (which exists) into `table` and *out. `neighbours`: the current neighbour names in link
// order (backlog masks from a log written with other neighbours are widened to all of them). False
// with *error naming the file (and the offset) when the directory cannot be used.
bool recover(const std::string& dir, const std::string& server, const std::vector<std::string>& neighbours,
             size_t backlog_bytes, LocationTable* table, Recovered* out, std::string* error);

// The header lines written by Persistence and checked by recover().
std::string log_header_line(const std::string& server, const std::string& run, uint64_t first_seq,
                            const std::vector<std::string>& neighbours);
std::string snapshot_header_line(const std::string& server, const std::string& run, uint64_t log_start,
                                 const std::vector<SyncState::EarlierRun>& history);

}  // namespace herd
