// Persistence implementation: the directory lock, the writer thread (group commit), the rewrite
// thread, and the per-loop lists of replies waiting for durability.
#include "herd/persistence.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <system_error>

#include "herd/record_file.h"
#include "protocol/fields.h"
#include "reactor/threads.h"

namespace herd {
namespace {

bool make_dirs(const std::string& path, std::string* error) {
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = path.find('/', pos + 1);
    std::string partial = path.substr(0, pos);
    if (partial.empty()) continue;
    if (::mkdir(partial.c_str(), 0755) != 0 && errno != EEXIST) {
      *error = partial + ": cannot create the data directory: " + std::strerror(errno);
      return false;
    }
  }
  return true;
}

void sync_dir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

int64_t ms_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

bool parse_fsync(const std::string& text, Persistence::Fsync* out) {
  if (text == "always") *out = Persistence::Fsync::kAlways;
  else if (text == "everysec") *out = Persistence::Fsync::kEverySec;
  else if (text == "no") *out = Persistence::Fsync::kNo;
  else return false;
  return true;
}

std::unique_ptr<Persistence> Persistence::open(const Options& options, LocationTable& table, LogSink& log,
                                               Recovered* recovered, std::string* error) {
  if (!make_dirs(options.dir, error)) return nullptr;
  std::string lock_path = options.dir + "/" + kLockFile;
  int lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd < 0) {
    *error = lock_path + ": cannot open: " + std::strerror(errno);
    return nullptr;
  }
  if (::flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    *error = options.dir + ": in use by another running server (its LOCK is held)";
    ::close(lock_fd);
    return nullptr;
  }
  auto started = std::chrono::steady_clock::now();
  if (!recover(options.dir, options.server, options.neighbours, options.backlog_bytes, &table, recovered, error)) {
    ::close(lock_fd);
    return nullptr;
  }
  std::unique_ptr<Persistence> p(new Persistence(options, table, log, lock_fd));
  p->snapshot_bytes_ = recovered->snapshot_bytes;
  p->log_bytes_ = recovered->log_bytes;
  p->held_ = recovered->held;
  for (const auto& n : recovered->notes) p->problem(n);
  p->note("data directory " + options.dir + ": " + std::to_string(recovered->records_from_snapshot) +
          " records from the snapshot, " + std::to_string(recovered->entries_from_logs) +
          " entries from the record logs, " + std::to_string(table.size()) + " clients, in " +
          std::to_string(ms_since(started)) + " ms; history continues at seq " + std::to_string(recovered->next_seq));
  return p;
}

Persistence::Persistence(Options options, LocationTable& table, LogSink& log, int lock_fd)
    : options_(std::move(options)), table_(table), log_(log), lock_fd_(lock_fd) {
  for (int i = 0; i < std::max(1, options_.loops); ++i) lanes_.push_back(std::make_unique<Lane>());
}

Persistence::~Persistence() {
  stop();
  if (log_fd_ >= 0) ::close(log_fd_);
  ::close(lock_fd_);  // releases the lock
}

void Persistence::note(const std::string& text) { log_.off_loop().write("-", '*', text); }
void Persistence::problem(const std::string& text) { log_.off_loop().write("-", '!', text); }

bool Persistence::start(FloodLog& backlog, const SyncState& sync, std::string* error) {
  backlog_ = &backlog;
  run_ = sync.run();
  history_ = sync.history();
  const uint64_t first = backlog.next_seq();
  last_written_ = first - 1;
  durable_.store(first - 1, std::memory_order_release);
  synced_through_.store(first - 1, std::memory_order_release);
  if (!open_log(first, error)) return false;
  writer_ = reactor::start_thread("record-writer", [this] { run_writer(); });
  return true;
}

void Persistence::stop() {
  if (!writer_.joinable()) return;
  {
    std::lock_guard lock(stop_mu_);
    stopping_.store(true, std::memory_order_release);
  }
  stop_cv_.notify_all();
  backlog_->wake_all();
  writer_.join();
  if (rewriter_.joinable()) rewriter_.join();
}

bool Persistence::open_log(uint64_t first_seq, std::string* error) {
  const std::string path = options_.dir + "/" + record_log_name(first_seq);
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    *error = path + ": cannot create: " + std::strerror(errno);
    return false;
  }
  std::string header;
  append_frame(&header, kFileHeaderKind, 0, 0, log_header_line(options_.server, run_, first_seq, options_.neighbours));
  std::string_view rest = header;
  const char* failed = !write_all(fd, &rest) ? "cannot write"
                       : options_.fsync != Fsync::kNo && datasync(fd) != 0 ? "fdatasync failed"
                                                                               : nullptr;
  if (failed) {
    *error = path + ": " + failed + ": " + std::strerror(errno);
    ::close(fd);
    ::unlink(path.c_str());
    return false;
  }
  if (options_.fsync != Fsync::kNo) sync_dir(options_.dir);
  if (log_fd_ >= 0) ::close(log_fd_);
  log_fd_ = fd;
  log_path_ = path;
  log_bytes_ += header.size();
  log_broken_ = false;
  // What goes before first_seq is not this log's: a rewrite that starts here waits only for what
  // follows (one begun before a gap or a failed sync, which may open a log, is dropped).
  if (synced_through_.load(std::memory_order_relaxed) < first_seq - 1) {
    synced_through_.store(first_seq - 1, std::memory_order_release);
  }
  return true;
}

bool Persistence::write_all(int fd, std::string_view* bytes) const {
  while (!bytes->empty()) {
    ssize_t n = options_.write ? options_.write(fd, bytes->data(), bytes->size())
                               : ::write(fd, bytes->data(), bytes->size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    bytes->remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

int Persistence::datasync(int fd) const { return options_.datasync ? options_.datasync(fd) : ::fdatasync(fd); }

void Persistence::sync_log() {
  if (log_broken_) return;  // a new log follows (sync_failed_)
  if (options_.fsync != Fsync::kNo && datasync(log_fd_) != 0) {
    problem(log_path_ + ": fdatasync failed: " + std::strerror(errno) +
            "; nothing newer counts as durable until a new log and a rewrite of the table are in place");
    if (!floor_active_) {
      durable_floor_ = durable();
      floor_active_ = true;
    }
    sync_failed_ = true;
    log_broken_ = true;
    log_troubles_.fetch_add(1, std::memory_order_release);
    return;
  }
  synced_ = true;
  synced_through_.store(last_written_, std::memory_order_release);
  set_durable(last_written_);
}

void Persistence::set_durable(uint64_t seq) {
  if (floor_active_) seq = std::min(seq, durable_floor_);
  if (seq <= durable_.load(std::memory_order_relaxed)) return;
  // Sequentially consistent, with when_durable's: this store is ordered before the loads of `lowest`
  // below, as a waiter's store of `lowest` is before its load of durable_; one side sees the other.
  durable_.store(seq, std::memory_order_seq_cst);
  for (auto& lane : lanes_) {
    if (lane->lowest.load(std::memory_order_seq_cst) > seq) continue;
    std::vector<Waiter> ready;
    reactor::EventLoop* loop;
    {
      std::lock_guard lock(lane->mu);
      lane->take_ready(seq, &ready);
      loop = lane->loop;
    }
    if (!ready.empty()) {
      loop->queue([ready = std::move(ready)]() mutable {
        for (auto& w : ready) w.done();
      });
    }
  }
}

uint64_t Persistence::when_durable(reactor::EventLoop& loop, uint64_t seq, std::function<void()> done) {
  if (seq <= durable()) {
    loop.queue(std::move(done));
    return 0;
  }
  Lane& lane = *lanes_[static_cast<size_t>(loop.index()) % lanes_.size()];
  uint64_t ticket;
  {
    std::lock_guard lock(lane.mu);
    lane.loop = &loop;
    ticket = lane.next_ticket++;
    // Seqs come in order from one loop, nearly always: keep the list sorted anyway.
    auto at = lane.waiters.end();
    while (at != lane.waiters.begin() && (at - 1)->seq > seq) --at;
    lane.waiters.insert(at, Waiter{seq, ticket, std::move(done)});
    lane.lowest.store(lane.waiters.front().seq, std::memory_order_seq_cst);
  }
  // The writer may have moved durable() past seq after the check above and before this waiter was
  // listed: take what is ready now, so that no waiter waits for a sync that never comes.
  uint64_t now = durable_.load(std::memory_order_seq_cst);
  if (lane.lowest.load(std::memory_order_acquire) <= now) {
    std::vector<Waiter> ready;
    {
      std::lock_guard lock(lane.mu);
      lane.take_ready(now, &ready);
    }
    for (auto& w : ready) loop.queue(std::move(w.done));
  }
  return ticket;
}

size_t Persistence::waiting() const {
  size_t n = 0;
  for (const auto& lane : lanes_) {
    std::lock_guard lock(lane->mu);
    n += lane->waiters.size();
  }
  return n;
}

void Persistence::cancel_durable(reactor::EventLoop& loop, uint64_t seq, uint64_t ticket) {
  if (ticket == 0) return;
  Lane& lane = *lanes_[static_cast<size_t>(loop.index()) % lanes_.size()];
  std::lock_guard lock(lane.mu);
  auto it = std::lower_bound(lane.waiters.begin(), lane.waiters.end(), seq,
                             [](const Waiter& w, uint64_t s) { return w.seq < s; });
  while (it != lane.waiters.end() && it->seq == seq && it->ticket != ticket) ++it;
  if (it == lane.waiters.end() || it->seq != seq) return;  // already queued to run
  lane.waiters.erase(it);
  lane.refresh_lowest();
}

void Persistence::Lane::take_ready(uint64_t durable, std::vector<Waiter>* ready) {
  auto it = waiters.begin();
  while (it != waiters.end() && it->seq <= durable) ++it;
  ready->assign(std::make_move_iterator(waiters.begin()), std::make_move_iterator(it));
  waiters.erase(waiters.begin(), it);
  refresh_lowest();
}

void Persistence::Lane::refresh_lowest() {
  lowest.store(waiters.empty() ? UINT64_MAX : waiters.front().seq, std::memory_order_release);
}

void Persistence::run_writer() {
  // However the writer ends, a rewrite waiting for it to sync (run_rewrite) stops waiting.
  struct Done {
    std::atomic<bool>& flag;
    ~Done() { flag.store(true, std::memory_order_release); }
  } done{writer_done_};
  FloodLog::Cursor cursor = backlog_->cursor_at(last_written_ + 1);
  auto last_sync = std::chrono::steady_clock::now();
  std::string raw, out;
  uint64_t rewrite_wanted = 0;  // a log start whose rewrite must follow (after a gap)
  std::chrono::steady_clock::time_point retry_open_at{};  // after a failed open_log
  for (;;) {
    raw.clear();
    bool behind = false;
    while (raw.size() < kBatchBytes) {
      size_t before = raw.size();
      if (backlog_->read(&cursor, &raw, kBatchBytes - raw.size()) == FloodLog::ReadStatus::kBehind) {
        behind = true;
        break;
      }
      if (raw.size() == before) break;
    }
    if (!raw.empty()) {
      out.clear();
      std::string_view view = raw;
      FloodLog::Entry e;
      uint64_t last = last_written_;
      for (;;) {
        const char* at = view.data();
        if (!FloodLog::next_entry(&view, &e)) break;
        append_frame(&out, std::string_view(at, static_cast<size_t>(view.data() - at)));
        if (e.kind == FloodLog::Kind::kProgress) {
          std::string_view f[3];
          uint64_t s = 0;
          if (protocol::split_fields(e.line, f, 3) == 3 &&
              std::from_chars(f[2].data(), f[2].data() + f[2].size(), s).ec == std::errc()) {
            held_[std::string(f[0])] = SyncState::Held{std::string(f[1]), s};
          }
        }
        last = e.seq;
      }
      std::string_view rest = out;
      bool abandoned = false;
      while (!write_all(log_fd_, &rest)) {
        // What was written stays written: the retry goes on from the first byte that was not.
        if (stopping_.load(std::memory_order_acquire)) {
          problem(log_path_ + ": write failed: " + std::strerror(errno) + "; stopping with " +
                  std::to_string(rest.size()) + " bytes unwritten (recovery drops the cut frame)");
          last = last_written_;  // not durable, never acknowledged
          abandoned = true;
          break;
        }
        problem(log_path_ + ": write failed: " + std::strerror(errno) + "; retrying in 1 s");
        wait_unless_stopping(std::chrono::seconds(1));
      }
      last_written_ = last;
      log_bytes_ += out.size();
      synced_ = false;
      if (out.capacity() > 2 * kBatchBytes) std::string().swap(out);
      if (abandoned) {
        // The log now ends in a cut frame, which recovery drops as a torn tail. Nothing more may
        // follow it: a later batch written whole (had the disk found room meanwhile) would put
        // good frames after the cut one, which recovery takes for damage and refuses.
        sync_log();
        break;
      }
    }
    if (behind) {
      // Entries were evicted before they were written: only a rewrite of the table saves them.
      const uint64_t start = backlog_->oldest_seq();
      problem("record log writer fell behind: backlog seqs " + std::to_string(last_written_ + 1) + ".." +
              std::to_string(start - 1) + " were evicted before they were written; a rewrite follows");
      log_troubles_.fetch_add(1, std::memory_order_release);
      sync_log();
      durable_floor_ = durable();  // nothing newer is durable before the rewrite is in place
      floor_active_ = true;
      std::string error;
      if (!open_log(start, &error)) {
        // The gap cannot go into the current log (recovery would refuse it): write nothing until
        // a new log opens, trying again each second (the backlog moves on meanwhile).
        if (stopping_.load(std::memory_order_acquire)) {
          problem(error + "; stopping without the records after the gap");
          break;
        }
        problem(error + "; trying again in 1 s");
        wait_unless_stopping(std::chrono::seconds(1));
        continue;
      }
      last_written_ = start - 1;
      cursor = backlog_->cursor_at(start);
      rewrite_wanted = start;
      continue;
    }
    if (sync_failed_) {
      // The pages of the failed sync may never reach the disk: the table is rewritten into a
      // snapshot, with a new log from here on (below), and durable() moves again once it is in place.
      sync_failed_ = false;
      if (!rewrite_wanted) rewrite_wanted = last_written_ + 1;
    }
    const auto now = std::chrono::steady_clock::now();
    if (!synced_) {
      if (options_.fsync != Fsync::kEverySec) {
        sync_log();  // with fsync: no, it only marks what was written as synced
      } else if (now - last_sync >= std::chrono::seconds(1) || sync_requested_.load(std::memory_order_acquire)) {
        sync_log();
        last_sync = now;
      }
    }
    // A finished rewrite: the snapshot now holds everything before its log start.
    if (rewriter_.joinable() && !rewriting_.load(std::memory_order_acquire)) {
      rewriter_.join();
      const uint64_t through = rewritten_through_.load(std::memory_order_acquire);
      if (through) snapshot_bytes_ = rewrite_bytes_.load(std::memory_order_relaxed);
      if (floor_active_ && through + 1 >= rewrite_wanted) {
        floor_active_ = false;
        rewrite_wanted = 0;
        set_durable(synced_ ? last_written_ : durable());
      }
    }
    if (!rewriter_.joinable() && !stopping_.load(std::memory_order_acquire) && now >= retry_open_at &&
        (rewrite_wanted || (log_bytes_ > options_.compact_bytes && log_bytes_ > snapshot_bytes_))) {
      // The new record log starts where the snapshot will end.
      sync_log();
      const uint64_t start = last_written_ + 1;
      const uint64_t bytes_before = log_bytes_;
      log_bytes_ = 0;  // the new log's header counts from here
      std::string error;
      if (!open_log(start, &error)) {
        // Records go on into the current log (they follow on from it); the rewrite waits.
        problem(error + "; trying again in 1 s");
        log_bytes_ = bytes_before;
        retry_open_at = now + std::chrono::seconds(1);
      } else {
        if (rewrite_wanted) rewrite_wanted = start;
        // No thread for it: the records go on into the new log, and the rewrite waits as for a log
        // that could not be opened.
        if (!start_rewrite(start)) retry_open_at = now + std::chrono::seconds(1);
      }
    }
    if (raw.empty()) {
      if (stopping_.load(std::memory_order_acquire)) {
        sync_log();
        break;
      }
      if (options_.fsync == Fsync::kAlways) {
        // Replies wait for this writer: be woken by the next append.
        backlog_->wait_for_seq(cursor.seq, kIdleWait, stopping_);
      } else {
        // Nobody waits: gather kGatherWait's worth of appends per write, and never make an append
        // wake a thread (the backlog holds far more than that).
        wait_unless_stopping(kGatherWait);
      }
    }
  }
}

void Persistence::wait_unless_stopping(std::chrono::milliseconds how_long) {
  std::unique_lock lock(stop_mu_);
  stop_cv_.wait_for(lock, how_long, [&] { return stopping_.load(std::memory_order_acquire); });
}

bool Persistence::start_rewrite(uint64_t log_start) {
  rewriting_.store(true, std::memory_order_release);
  // A process at its thread limit (RLIMIT_NPROC, a container's pids.max) cannot start it: the
  // exception must not leave the writer thread, which would end the process.
  try {
    rewriter_ = reactor::start_thread("rewrite", [this, log_start, troubles = log_troubles_.load(std::memory_order_acquire),
                                                  held = held_, history = history_] {
      run_rewrite(log_start, troubles, held, history);
    });
  } catch (const std::system_error& e) {
    rewriting_.store(false, std::memory_order_release);
    problem(std::string("rewrite: ") + e.what() + "; trying again in 1 s");
    return false;
  }
  return true;
}

void Persistence::run_rewrite(uint64_t log_start, uint64_t troubles, std::map<std::string, SyncState::Held> held,
                              std::vector<SyncState::EarlierRun> history) {
  auto started = std::chrono::steady_clock::now();
  const std::string tmp = options_.dir + "/" + kSnapshotTmpFile;
  const std::string final_path = options_.dir + "/" + kSnapshotFile;
  auto fail = [&](const std::string& what, int fd) {
    problem(tmp + ": rewrite failed: " + what + ": " + std::strerror(errno));
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    rewriting_.store(false, std::memory_order_release);
  };
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return fail("cannot create", -1);
  std::string buf, chunk;
  append_frame(&buf, kFileHeaderKind, 0, 0, snapshot_header_line(options_.server, run_, log_start, history));
  for (const auto& [peer, h] : held) {
    append_frame(&buf, static_cast<uint8_t>(FloodLog::Kind::kProgress), 0, 0,
                 peer + " " + h.run + " " + std::to_string(h.seq));
  }
  uint64_t records = 0, bytes = 0;
  auto flush = [&] {
    std::string_view v = buf;
    while (!v.empty()) {
      ssize_t n = ::write(fd, v.data(), v.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return false;
      v.remove_prefix(static_cast<size_t>(n));
    }
    bytes += buf.size();
    buf.clear();
    return true;
  };
  LocationTable::ScanPosition pos;
  while (!pos.done) {
    chunk.clear();
    records += table_.scan(&pos, &chunk, 256 * 1024);
    for (size_t at = 0; at < chunk.size();) {
      size_t nl = chunk.find('\n', at);
      append_frame(&buf, static_cast<uint8_t>(FloodLog::Kind::kRecord), 0, 0, std::string_view(chunk).substr(at, nl - at));
      at = nl + 1;
    }
    if (buf.size() >= kBatchBytes && !flush()) return fail("write", fd);
  }
  // The scan also took records stored after log_start, which only the new record log holds. The
  // snapshot goes into place only once that log has them on disk: else a crash could leave a record
  // in the recovered table but in no record log, hence in no backlog, owed to no neighbour.
  const uint64_t covered = backlog_->next_seq() - 1;
  append_frame(&buf, kSnapshotEndKind, 0, 0, std::to_string(records));
  if (!flush()) return fail("write", fd);
  if (::fdatasync(fd) != 0) return fail("fdatasync", fd);
  ::close(fd);
  // The writer is asked to sync at once (with fsync: everysec it would within a second), and once
  // more when it stops; if it ends without getting there (a failed write), the snapshot is dropped.
  // A failed sync or a gap since the rewrite began drops it: the writer starts another once it has a
  // new log. (Checked after synced_through_ is read: a gap counts before it opens the log that moves
  // synced_through_ past it.)
  const auto wait_until = std::chrono::steady_clock::now() + kRewriteLogWait;
  for (;;) {
    const bool synced = synced_through_.load(std::memory_order_acquire) >= covered;
    const bool troubled = log_troubles_.load(std::memory_order_acquire) != troubles;
    if (synced && !troubled) break;
    if (troubled || writer_done_.load(std::memory_order_acquire) || std::chrono::steady_clock::now() > wait_until) {
      // The older record logs stay, so nothing is lost; a later rewrite tries again.
      problem(tmp + ": rewrite dropped: " +
              (troubled ? std::string("the record log failed meanwhile (a failed sync or a backlog gap)")
                        : "the record log was not synced through seq " + std::to_string(covered) +
                              ", the last the snapshot may hold"));
      sync_requested_.store(false, std::memory_order_release);
      ::unlink(tmp.c_str());
      rewriting_.store(false, std::memory_order_release);
      return;
    }
    sync_requested_.store(true, std::memory_order_release);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  sync_requested_.store(false, std::memory_order_release);
  if (::rename(tmp.c_str(), final_path.c_str()) != 0) return fail("rename", -1);
  sync_dir(options_.dir);
  // The record logs before log_start are in the snapshot now.
  int removed = 0;
  if (DIR* d = ::opendir(options_.dir.c_str())) {
    while (dirent* ent = ::readdir(d)) {
      std::string_view n = ent->d_name;
      if (n.size() != 28 || n.substr(0, 8) != "records-" || n.substr(24) != ".log") continue;
      uint64_t first;
      auto [end, ec] = std::from_chars(n.data() + 8, n.data() + 24, first, 16);
      if (ec != std::errc() || first >= log_start) continue;
      if (::unlink((options_.dir + "/" + std::string(n)).c_str()) == 0) ++removed;
    }
    ::closedir(d);
  }
  note("rewrite: snapshot of " + std::to_string(records) + " records (" + std::to_string(bytes) +
       " bytes) up to seq " + std::to_string(log_start - 1) + " in " + std::to_string(ms_since(started)) +
       " ms; " + std::to_string(removed) + " older record logs removed");
  rewrite_bytes_.store(bytes, std::memory_order_relaxed);
  rewritten_through_.store(log_start - 1, std::memory_order_release);
  rewriting_.store(false, std::memory_order_release);
}

}  // namespace herd
