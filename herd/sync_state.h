// SyncState: what catch-up needs to know about histories. A server's history is the sequence of
// records in its backlog (FloodLog seqs). Each process start is a new run, named by a random run id;
// with a data_dir the seq numbers go on where the recovered log ended, and the earlier runs are kept
// with the last seq of each that survived on disk, so that a neighbour that holds "run R up to seq S"
// of an earlier run still resumes from there instead of needing a full transfer.
//
// It also holds, per neighbour, how far this server holds that neighbour's history (from the MARK
// lines the neighbour sends): what the acceptor answers in SYNC-FROM when the neighbour dials again.
//
// Threads: run(), history(), append_sync_line() and resume_point() are read-only after construction
// (any thread); held()/set_held()/all_held() are thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace herd {

class SyncState {
 public:
  struct EarlierRun {
    std::string run;
    uint64_t last_seq = 0;  // the last seq of that run still held
  };
  struct Held {
    std::string run;
    uint64_t seq = 0;
  };

  // `history`: earlier runs, newest first (empty without a data_dir).
  SyncState(std::string run, std::vector<EarlierRun> history);

  // A fresh run id: 16 hex digits from the system's random source.
  static std::string new_run_id();

  const std::string& run() const { return run_; }
  const std::vector<EarlierRun>& history() const { return history_; }
  // Appends this server's "SYNC <run> <run>:<seq>..." line (with its newline).
  void append_sync_line(std::string& out) const;

  // A neighbour says it holds `run` of this server's history up to `seq`: the seq after which to resume
  // sending, or nullopt when this server cannot tell (an unknown run: a full transfer is needed).
  std::optional<uint64_t> resume_point(std::string_view run, uint64_t seq) const;

  // How far this server holds `peer`'s history.
  std::optional<Held> held(std::string_view peer) const;
  // Records that this server holds `peer`'s history `run` up to `seq` (within one run it only grows).
  void set_held(std::string_view peer, std::string_view run, uint64_t seq);
  std::map<std::string, Held> all_held() const;

  // This process recovered earlier runs from its data_dir, so it may have lost the last records it
  // had flooded or received before it stopped (the disk had not taken them yet), which its
  // neighbours still hold (and would not send back: they came from here, or through here). Until the
  // first catch-up from `peer` completes in this process, the answer to peer's SYNC asks for every
  // current record of the replay (SYNC-FROM ... ALL). Thread-safe.
  bool wants_everything_from(std::string_view peer) const;
  void catch_up_completed(std::string_view peer);

 private:
  const std::string run_;
  const std::vector<EarlierRun> history_;
  mutable std::mutex mu_;
  std::map<std::string, Held, std::less<>> held_;  // guarded by mu_
  std::set<std::string, std::less<>> caught_up_;    // guarded by mu_: see wants_everything_from
};

}  // namespace herd
