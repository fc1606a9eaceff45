// Persistence: the optional data directory of a server (config `data_dir`, `fsync`, `compact_bytes`;
// README "Persistence"). At start it takes the directory's lock and recovers the snapshot and the
// record logs into the table (herd/recovery.h). Then a writer thread follows the backlog (FloodLog) as
// one more reader and appends every entry, checksummed, to the current record log, in batches (group
// commit), syncing per the fsync policy:
//   always    fdatasync after every batch; an IAMAT is answered only once its record is durable
//   everysec  fdatasync at most once a second (a crash loses at most about the last second)
//   no        the kernel decides
// When the record log has grown past compact_bytes and past the snapshot, it is rewritten in the
// background: the writer starts a new record log at seq S and a rewrite thread writes the table (a
// scan holding one shard lock at a time) and the neighbours' progress as a snapshot of everything
// before S (and of what the scan met stored since), syncs it, waits until the new log is synced
// through the last record the scan may have met, renames it into place and removes the older logs.
// The loops never wait on the disk (with fsync always, only the replies to IAMATs wait, in command
// order).
//
// A writer that falls so far behind that the backlog evicts what it has not written yet (a stalled
// disk) starts a new log where the backlog now begins and forces a rewrite; until that snapshot is
// in place nothing newer counts as durable.
//
// Threads: open(), start() and stop() on the controlling thread; durable(), waiting() and when_durable()
// from any thread (when_durable from a loop thread).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "herd/flood_log.h"
#include "herd/location_table.h"
#include "herd/log_sink.h"
#include "herd/recovery.h"
#include "herd/sync_state.h"
#include "reactor/event_loop.h"

namespace herd {

class Persistence {
 public:
  enum class Fsync { kAlways, kEverySec, kNo };
  struct Options {
    std::string dir;                     // <data_dir>/<name>; created when missing
    std::string server;
    std::vector<std::string> neighbours;  // in link order
    Fsync fsync = Fsync::kEverySec;
    size_t compact_bytes = 64 * 1024 * 1024;
    size_t backlog_bytes = 16 * 1024 * 1024;
    int loops = 1;                       // event loops that may wait for durability
    // Tests: stand in for ::fdatasync and ::write on the record logs (to inject failures); empty:
    // the real ones.
    std::function<int(int fd)> datasync;
    std::function<ssize_t(int fd, const void* data, size_t size)> write;
  };
  // Record log bytes written per write() at most, and the most a batch of the writer holds.
  static constexpr size_t kBatchBytes = 4 * 1024 * 1024;
  // fsync always: how often a writer with nothing to write looks again (appends wake it sooner).
  static constexpr std::chrono::milliseconds kIdleWait{100};
  // fsync everysec or no: the writer writes every kGatherWait what was appended meanwhile (no
  // append ever wakes it: a thread wake-up per record would cost more than the write).
  static constexpr std::chrono::milliseconds kGatherWait{10};
  // How long a finished snapshot waits for the record log to be synced through the last record its
  // scan may have taken (the writer is asked to sync at once); past it, the rewrite is dropped.
  static constexpr std::chrono::seconds kRewriteLogWait{30};

  // Creates the directory if needed, locks it and recovers it into `table` and *recovered. nullptr
  // with *error (naming the file) when the directory cannot be used.
  static std::unique_ptr<Persistence> open(const Options& options, LocationTable& table, LogSink& log,
                                           Recovered* recovered, std::string* error);
  ~Persistence();

  // Starts writing: a new record log from backlog.next_seq() on, in this run. False with *error when
  // the file cannot be created.
  bool start(FloodLog& backlog, const SyncState& sync, std::string* error);
  // Writes and syncs everything appended so far, waits for a rewrite in progress, stops the threads.
  void stop();

  Fsync fsync() const { return options_.fsync; }
  // Whether IAMAT replies wait for durable().
  bool replies_wait() const { return options_.fsync == Fsync::kAlways; }
  // The highest seq on disk as the fsync policy promises it (synced, or for `no` written).
  uint64_t durable() const { return durable_.load(std::memory_order_acquire); }
  // Loop thread: runs `done` on `loop` once durable() >= seq (at once, later in this iteration, if it
  // is). Returns a ticket for cancel_durable, or 0 when `done` was queued at once.
  uint64_t when_durable(reactor::EventLoop& loop, uint64_t seq, std::function<void()> done);
  // Loop thread: forgets the waiter `ticket` (for `seq`) of `loop` if it has not been queued yet. A
  // client that leaves must not leave its waiter behind: while the disk takes nothing (full, stalled)
  // waiters would pile up with every connection that came and went.
  void cancel_durable(reactor::EventLoop& loop, uint64_t seq, uint64_t ticket);
  // Any thread: waiters registered and not yet queued to run, over every loop.
  size_t waiting() const;

 private:
  struct Waiter {
    uint64_t seq;
    uint64_t ticket;
    std::function<void()> done;
  };
  struct Lane {
    mutable std::mutex mu;
    reactor::EventLoop* loop = nullptr;  // guarded by mu
    std::vector<Waiter> waiters;         // guarded by mu: in seq order
    uint64_t next_ticket = 1;            // guarded by mu
    // Under mu: moves the waiters for seqs up to `durable` into *ready; keeps `lowest` true.
    void take_ready(uint64_t durable, std::vector<Waiter>* ready);
    void refresh_lowest();  // under mu
    std::atomic<uint64_t> lowest{UINT64_MAX};
  };

  Persistence(Options options, LocationTable& table, LogSink& log, int lock_fd);
  void run_writer();
  // Writer thread (or start()): a new record log from `first_seq` on, its header on disk. On failure
  // (*error says why) the current log stays open, and nothing of the new one is left behind.
  bool open_log(uint64_t first_seq, std::string* error);
  // Writes *bytes to `fd`, removing from its front what was written; false on an error (*bytes then
  // holds what is left, so a retry never writes a byte twice).
  bool write_all(int fd, std::string_view* bytes) const;
  int datasync(int fd) const;  // fdatasync, or options_.datasync
  // Syncs the record log and moves durable() up to what it holds. A failed sync is never retried on
  // the same file (the kernel reports a lost write once, then calls the pages clean): durable() is
  // held where it is, the log stops counting as synced (log_broken_, synced_through_ stays), and a
  // new log and a rewrite of the table follow (sync_failed_).
  void sync_log();
  void set_durable(uint64_t seq);
  // Writer thread: sleeps `how_long`, or less when stop() begins.
  void wait_unless_stopping(std::chrono::milliseconds how_long);
  bool start_rewrite(uint64_t log_start);  // writer thread; false when no thread could be started
  void run_rewrite(uint64_t log_start, uint64_t troubles, std::map<std::string, SyncState::Held> held,
                   std::vector<SyncState::EarlierRun> history);
  void note(const std::string& text);
  void problem(const std::string& text);

  const Options options_;
  LocationTable& table_;
  LogSink& log_;
  const int lock_fd_;
  FloodLog* backlog_ = nullptr;
  std::string run_;
  std::vector<SyncState::EarlierRun> history_;  // earlier runs, for snapshot headers

  // Writer thread state.
  int log_fd_ = -1;
  std::string log_path_;
  uint64_t last_written_ = 0;
  uint64_t log_bytes_ = 0;         // record log bytes since the current snapshot's log_start
  uint64_t snapshot_bytes_ = 0;
  bool synced_ = true;             // everything written has been synced
  std::map<std::string, SyncState::Held> held_;  // progress as of last_written_
  bool floor_active_ = false;      // after a gap: nothing above durable_floor_ is durable until the
  uint64_t durable_floor_ = 0;     // rewrite that covers the gap is in place
  bool sync_failed_ = false;       // a sync failed: a new log and a rewrite are owed
  bool log_broken_ = false;        // the current log's sync failed: it never counts as synced again

  std::atomic<uint64_t> durable_{0};
  // The record logs hold, synced (with fsync: no, written), every entry up to this seq: what a
  // snapshot may hold past its log_start before it goes into place. Unlike durable_, never held back
  // by a floor (a rewrite that lifts the floor waits for this).
  std::atomic<uint64_t> synced_through_{0};
  std::atomic<bool> sync_requested_{false};  // a rewrite waits for synced_through_: sync now
  std::atomic<bool> writer_done_{false};     // the writer thread has ended
  // Failed syncs and backlog gaps so far: a rewrite begun before one is dropped (its scan may hold
  // records of the current log that never reached the disk, or that no log holds).
  std::atomic<uint64_t> log_troubles_{0};
  std::atomic<bool> stopping_{false};
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  std::atomic<bool> rewriting_{false};
  std::atomic<uint64_t> rewritten_through_{0};  // a finished rewrite's log_start - 1 (0: none)
  std::atomic<uint64_t> rewrite_bytes_{0};      // its snapshot's size
  std::thread writer_;
  std::thread rewriter_;
  std::vector<std::unique_ptr<Lane>> lanes_;
};

// Parses an fsync policy name (always, everysec, no).
bool parse_fsync(const std::string& text, Persistence::Fsync* out);

}  // namespace herd
