// LogSink: the server's asynchronous log file. Event loops append entries to their own in-memory
// lane (a short mutex shared only with the writer thread); a writer thread moves the lanes to disk
// every few milliseconds. The loops never wait on the disk; when the disk falls behind by more than
// the backlog limit, new entries are dropped and the number dropped is written once there is room
// (with the next entry that gets in, or by the writer once it has emptied the lane);
// `<`/`>` lines are dropped a sixteenth of the backlog earlier, so that the events explaining a flood
// (a client dropped, a warning) are still written while its traffic is not.
//
// Entry format, one line each: `2026-11-26T01:10:43.123456Z <who> <dir> <text>` where <who> names
// the connection (c12 a client, p3 an inbound peer, Hands an outbound link, - the server itself),
// <dir> is `<` received, `>` sent, `+` opened, `-` dropped, `!` a problem, `*` a notice. Control
// bytes and backslashes inside <text> are escaped (\n, \r, \t, \\, and \xHH for the other control
// bytes, DEL included), so each entry is one line of text: no NUL that makes grep call the file
// binary, no ESC sequence that reaches an operator's terminal.
//
// Operations: a level filters entries (io: all; events: no `<`/`>` lines; warnings: `!` only);
// reopen() (SIGHUP) makes the writer reopen the path between two whole batches, so an entry is never
// split and logrotate's `create` works; with a size bound the writer renames NAME.log to NAME.log.1
// (… up to NAME.log.<keep>) before a batch would pass it (when the rename fails, it writes on in the
// file, says so, and tries again kRotateRetry later); a failed write counts its entries as
// dropped and says so in the next entry that reaches the file; a file whose last entry was cut short
// (a crash) is ended with a newline before new entries are appended. Path "-" writes to stderr.
//
// Page cache: a busy server logs tens of MB a second, which the kernel would otherwise copy into
// its page cache and keep there (dirty, then clean) until memory runs short. A round of at least
// 64 KiB goes to the disk directly: its whole 4 KiB blocks with O_DIRECT from an aligned copy (the
// file's last partial block read back in front), the rest of its last block through the cache. On
// this VM copying into page-cache pages was the writer's main cost (a page the guest has not touched
// lately also faults in the host): in `make bench`'s five-server herd the log writers fell from about
// 18% to 9% of the samples. Smaller rounds, and files that refuse O_DIRECT, go through the cache:
// the writer starts each MiB's disk write as soon as it is written (sync_file_range) and drops what
// the disk holds, all but the last 4 MiB (which `tail -f` reads), from the cache (posix_fadvise
// DONTNEED). Only the writer thread ever waits for the disk.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "reactor/buffer.h"

namespace herd {

enum class LogLevel { kIo, kEvents, kWarnings };

struct LogOptions {
  LogLevel level = LogLevel::kIo;
  uint64_t max_bytes = 0;  // rotate before the file passes this size; 0: never
  int keep = 5;            // rotated files kept (NAME.log.1 … NAME.log.<keep>)
};

class LoopLog;

class LogSink {
 public:
  // Opens (appending to, creating) `path` with `lanes` lanes (one per event loop, plus one for
  // everything else) and starts the writer. nullptr with *error set when the file cannot be opened.
  static std::unique_ptr<LogSink> open(const std::string& path, int lanes, size_t backlog_bytes,
                                       std::string* error, LogOptions options = {});
  ~LogSink();  // writes everything still queued, then closes

  // Any thread; `lane` is the caller's loop index, or lanes-1 for other threads. Never blocks on I/O.
  void write(int lane, std::string_view who, char dir, std::string_view text);
  // Same, with the text in two parts (saves building a temporary for "prefix + line").
  void write(int lane, std::string_view who, char dir, std::string_view text1, std::string_view text2);

  // Same, stamped `ts` rather than now: for the entries made while handling one read, which share
  // the time it was read (one clock reading for a batch of pipelined commands or flooded records).
  void write_at(int lane, const timespec& ts, std::string_view who, char dir, std::string_view text1,
                std::string_view text2 = {});

  // Same, one entry per line of `lines` (split on "\n", a final "\r" dropped, empty lines skipped),
  // under one lock and one clock reading: for batches such as a burst of flooded records.
  void write_each_line(int lane, std::string_view who, char dir, std::string_view lines);

  // Any thread: whether entries of direction `dir` are kept at this level (callers may skip building
  // text for entries that would be discarded).
  bool enabled(char dir) const {
    return level_ == LogLevel::kIo || dir == '!' || (level_ == LogLevel::kEvents && dir != '<' && dir != '>');
  }
  // Any thread: asks the writer to reopen the file (after logrotate moved it). Never blocks.
  void reopen();

 private:
  struct Lane;

 public:
  // A thread's hold on a lane for a burst of entries (the lines of one read, each logged): the lane's
  // lock is taken once, and that thread's entries for the lane go in under it without a lock each.
  // The writer waits for the hold to end, or for the holder's next entry, which then gives the hold
  // up (its later entries lock one by one): so a hold is for work that never waits (an event loop's
  // handling of one read), and a loop busy with one read after another cannot keep the writer out.
  // A thread holds at most one lane at a time; a second hold, of any lane, while one is held does
  // nothing.
  class Hold {
   public:
    Hold(LogSink& sink, int lane);
    ~Hold();
    Hold(const Hold&) = delete;
    Hold& operator=(const Hold&) = delete;

   private:
    Lane* lane_ = nullptr;  // the lane held, or nullptr when this hold does nothing
  };

  int lanes() const { return static_cast<int>(lanes_.size()); }
  // The lane of every thread that is not an event loop (the controlling thread, the memory trimmer,
  // the data directory's writer): the last one.
  LoopLog off_loop();
  uint64_t dropped() const { return dropped_total_.load(std::memory_order_relaxed); }
  // Any thread: bytes the writer has written to the file.
  uint64_t bytes_written() const { return written_total_.load(std::memory_order_relaxed); }
  // Any thread: reopens (SIGHUP, rotation) and rotations that failed, the writer going on with the
  // old file.
  uint64_t reopen_failures() const { return reopen_failures_.load(std::memory_order_relaxed); }
  // Any thread: asks the writer to write what is queued now and waits until it has.
  void flush();

 private:
  struct Lane {
    std::mutex mu;  // held by the writer while it swaps, by a thread for each entry or for a Hold
    std::atomic<bool> writer_waiting{false};  // the writer wants mu: a Hold gives it up at its next entry
    reactor::Buffer buf;   // guarded by mu
    uint64_t dropped = 0;  // guarded by mu
    // Guarded by mu: the text of the last entry's time, "2026-11-27T09:20:18" (stamp_len bytes,
    // for second stamp_sec) then ".123456Z " (for microsecond micros_us). An entry copies the
    // whole array as one fixed-size move.
    int64_t stamp_sec = -1;
    long micros_us = -1;
    size_t stamp_len = 0;
    char stamp[48] = {};
  };

  LogSink(int fd, std::string path, int lanes, size_t backlog_bytes, LogOptions options);
  // Writer thread: the file operations. A round is every lane's batch, in lane order: rotated
  // before it would pass max_bytes, then written directly when it is large enough and the file
  // takes O_DIRECT (write_direct), else through the page cache.
  void write_round(const std::vector<reactor::Buffer>& batches);
  // Writes `bytes` at the end of the file (fd_); what does not get written is counted as dropped.
  void write_buffered(std::string_view bytes);
  // Writes the round's whole blocks with O_DIRECT, the partial last block through the page cache.
  // False when nothing new reached the file (the caller then writes the round through the cache).
  bool write_direct(const std::vector<reactor::Buffer>& batches, size_t total);
  // Writer thread, after a batch: starts the disk write of every new MiB at once, and drops from
  // the page cache what the disk holds beyond the last kKeepCachedBytes (see the file comment).
  void release_written_pages();
  void open_file();  // (re)opens path_; keeps the old descriptor when that fails
  void rotate();
  Lane& lane_for(int lane);
  // Runs `append` (which calls append_locked) with `lane`'s lock held: taken now, or already held by
  // this thread's Hold.
  template <class Append>
  void with_lane(Lane& lane, Append&& append);
  void run_writer();
  // Formats one entry into lane.buf; lane.mu must be held.
  void append_locked(Lane& lane, const timespec& ts, std::string_view who, char dir, std::string_view t1,
                     std::string_view t2);
  // The entries of write_each_line, one per line; lane.mu must be held.
  void append_lines_locked(Lane& lane, const timespec& ts, std::string_view who, char dir, std::string_view lines);
  // The lane's bytes past which an entry of direction `dir` is dropped (`<`/`>` lines sooner).
  size_t backlog_bound(char dir) const { return dir == '<' || dir == '>' ? io_backlog_bytes_ : backlog_bytes_; }
  // lane.mu must be held: the bytes of an entry's head, "<time> <who> <dir> ".
  static size_t entry_head_size(const Lane& lane, std::string_view who);
  // lane.mu must be held: writes an entry's head at the end of lane.buf, uncommitted, with room after
  // it for `text_room` bytes and a newline; returns where the text goes. Throws std::bad_alloc
  // (nothing of the entry in the lane) when the room cannot be had.
  static char* put_entry_head(Lane& lane, std::string_view who, char dir, size_t text_room);
  // lane.mu must be held: brings lane.stamp up to `ts` (the second's text cached, its microseconds
  // written when they changed). The entries made for one read share its time, so all but its first
  // find the stamp written already: that test is inline, the writing is restamp_locked.
  static void stamp_locked(Lane& lane, const timespec& ts) {
    if (ts.tv_sec != lane.stamp_sec || ts.tv_nsec / 1000 != lane.micros_us) restamp_locked(lane, ts);
  }
  static void restamp_locked(Lane& lane, const timespec& ts);
  // lane.mu must be held: caches the text of second `sec` in lane.stamp (the microseconds after it
  // then to be written again); appends to `out` the notice
  // of the lane's entries dropped since the last one that got in (if any) and resets the count.
  static void set_stamp_locked(Lane& lane, time_t sec);
  static void append_drop_notice_locked(Lane& lane, reactor::Buffer& out);

  int fd_;
  int direct_fd_ = -1;      // writer thread: the file again with O_DIRECT, or -1 (stderr, tmpfs, refused)
  char* staging_ = nullptr; // writer thread: kDirectAlign-aligned copy of a round, for direct writes
  size_t staging_cap_ = 0;
  const std::string path_;  // empty for stderr
  const LogLevel level_;
  const LogOptions options_;
  uint64_t file_bytes_ = 0;      // writer thread: size of the current file
  // A rotation whose rename failed (a directory that takes no renames) is not tried on every round.
  static constexpr std::chrono::seconds kRotateRetry{60};
  std::chrono::steady_clock::time_point rotate_retry_at_{};  // writer thread
  static constexpr off_t kStartWritebackBytes = 1 << 20;
  static constexpr off_t kKeepCachedBytes = 4 << 20;
  off_t writeback_from_ = 0;     // writer thread: the file's bytes before this are being written back
  off_t cached_from_ = 0;        // writer thread: those before this were dropped from the page cache
  uint64_t failed_entries_ = 0;  // writer thread: lost to failed writes, not yet reported
  std::string failure_;          // writer thread: why the last write failed
  std::atomic<bool> reopen_{false};
  size_t backlog_bytes_;
  size_t io_backlog_bytes_;  // `<`/`>` lines stop here; the rest of the backlog is for the other entries
  std::vector<std::unique_ptr<Lane>> lanes_;
  std::mutex wake_mu_;
  std::condition_variable wake_cv_;
  std::condition_variable flushed_cv_;
  uint64_t flush_requests_ = 0;  // guarded by wake_mu_
  uint64_t flushes_done_ = 0;    // guarded by wake_mu_
  bool stopping_ = false;        // guarded by wake_mu_
  std::atomic<uint64_t> dropped_total_{0};
  std::atomic<uint64_t> written_total_{0};  // writer thread only writes it
  std::atomic<uint64_t> reopen_failures_{0};  // writer thread only writes it
  std::thread writer_;
};

// LoopLog: one thread's handle on the log, with its lane bound: an event loop's (its index) or the
// one for every other thread (LogSink::off_loop()). Sessions and links write through their loop's
// instead of passing a lane number along. Cheap to copy; the sink outlives it.
class LoopLog {
 public:
  LoopLog(LogSink& sink, int lane) : sink_(&sink), lane_(lane) {}

  void write(std::string_view who, char dir, std::string_view text) const { sink_->write(lane_, who, dir, text); }
  void write(std::string_view who, char dir, std::string_view text1, std::string_view text2) const {
    sink_->write(lane_, who, dir, text1, text2);
  }
  void write_at(const timespec& ts, std::string_view who, char dir, std::string_view text1,
                std::string_view text2 = {}) const {
    sink_->write_at(lane_, ts, who, dir, text1, text2);
  }
  void write_each_line(std::string_view who, char dir, std::string_view lines) const {
    sink_->write_each_line(lane_, who, dir, lines);
  }
  // The calling thread's hold on this lane until the result goes (see LogSink::Hold).
  [[nodiscard]] LogSink::Hold hold() const { return LogSink::Hold(*sink_, lane_); }

 private:
  LogSink* sink_;
  int lane_;
};

inline LoopLog LogSink::off_loop() { return LoopLog(*this, lanes() - 1); }

}  // namespace herd
