// Persistence building blocks: CRC-32C, the frame reader (torn tail versus damage in the middle),
// recovery of a data directory written by Persistence (snapshot, record logs, history, progress,
// backlog refill), and (suite "persistence concurrency", under ThreadSanitizer by `make tsan-test`)
// the writer, a rewrite and durability waiters racing writers on the backlog.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <mutex>
#include <sstream>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "herd/crc32c.h"
#include "herd/flood_log.h"
#include "herd/location_table.h"
#include "herd/log_sink.h"
#include "herd/persistence.h"
#include "herd/record_file.h"
#include "herd/recovery.h"
#include "reactor/loop_group.h"
#include "test/unit/temp_dir.h"

using herd::FloodLog;
using herd::LocationTable;
using herd::Persistence;
using herd::RecordReader;

namespace {

using testing_fs::TempDir;

#if defined(__SANITIZE_THREAD__)
constexpr bool kThreadSanitizer = true;
#else
constexpr bool kThreadSanitizer = false;
#endif

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string rec(const std::string& id, int sec) {
  return "AT S +0.000000001 " + id + " +1.0+2.0 " + std::to_string(sec);
}

// A data directory as a running server leaves it: Persistence over a backlog fed by `feed`.
struct Rig {
  TempDir dir;
  std::unique_ptr<herd::LogSink> log;
  LocationTable table;
  herd::Recovered recovered;
  std::unique_ptr<Persistence> disk;
  std::unique_ptr<FloodLog> backlog;
  std::unique_ptr<herd::SyncState> sync;

  Persistence::Options options(Persistence::Fsync f, size_t compact = 1 << 30) {
    Persistence::Options o;
    o.dir = dir.path + "/S";
    o.server = "S";
    o.neighbours = {"A", "B"};
    o.fsync = f;
    o.compact_bytes = compact;
    o.loops = 2;
    o.datasync = datasync;
    o.write = write;
    return o;
  }
  // The options' fault injection, if set before open().
  std::function<int(int)> datasync;
  std::function<ssize_t(int, const void*, size_t)> write;
  bool open(Persistence::Fsync f, size_t compact = 1 << 30) {
    std::string error;
    if (!log) log = herd::LogSink::open(dir.path + "/S.log", 1, 1 << 20, &error);
    recovered = {};
    disk = Persistence::open(options(f, compact), table, *log, &recovered, &error);
    if (!disk) {
      return false;
    }
    backlog = std::make_unique<FloodLog>(1 << 20, recovered.next_seq);
    sync = std::make_unique<herd::SyncState>("run" + std::to_string(recovered.next_seq), recovered.history);
    return disk->start(*backlog, *sync, &error);
  }
  // Stores and logs a record as FloodRouter does.
  uint64_t store(const std::string& id, int sec, uint64_t mask = 1) {
    struct Append final : LocationTable::Observer {
      FloodLog* b;
      std::string line;
      uint64_t mask;
      uint64_t seq = 0;
      uint64_t on_stored(std::string_view) override {
        seq = b->append(FloodLog::Kind::kRecord, mask, line);
        return b->next_seq_relaxed();
      }
    } a;
    a.b = backlog.get();
    a.line = rec(id, sec) + " seen=S";
    a.mask = mask;
    table.offer(id, {sec, 0}, rec(id, sec), LocationTable::Source::kClient, nullptr, &a);
    return a.seq;
  }
  void close() {
    disk.reset();  // stops the writer: everything appended is written and synced
  }
  ~Rig() { close(); }  // before the backlog the writer reads goes
};

}  // namespace

TEST_SUITE("persistence") {
  TEST_CASE("CRC-32C: the standard check value, and continuation") {
    CHECK(herd::crc32c("123456789") == 0xe3069283u);
    CHECK(herd::crc32c("") == 0u);
    std::string long_text(1000, 'q');
    CHECK(herd::crc32c(long_text) == herd::crc32c(long_text.substr(500), herd::crc32c(long_text.substr(0, 500))));
    CHECK(herd::crc32c("a") != herd::crc32c("b"));
  }

  TEST_CASE("frames read back; a torn tail is told from damage in the middle") {
    TempDir d;
    std::string bytes;
    for (int i = 1; i <= 20; ++i) herd::append_frame(&bytes, 1, i, 3, rec("c" + std::to_string(i), i));
    const std::string path = d.path + "/f";
    write_file(path, bytes);
    std::string error;
    auto r = RecordReader::open(path, &error);
    REQUIRE(r);
    FloodLog::Entry e;
    int n = 0;
    while (r->next(&e) == RecordReader::Status::kEntry) {
      ++n;
      CHECK(e.seq == static_cast<uint64_t>(n));
      CHECK(e.mask == 3);
    }
    CHECK(n == 20);
    CHECK(r->next(&e) == RecordReader::Status::kEnd);

    // Cut short: the last frame is incomplete and nothing valid follows it.
    write_file(path, bytes.substr(0, bytes.size() - 5) + "\x01\x02garbage");
    r = RecordReader::open(path, &error);
    n = 0;
    RecordReader::Status s;
    while ((s = r->next(&e)) == RecordReader::Status::kEntry) ++n;
    CHECK(n == 19);
    CHECK(s == RecordReader::Status::kDamaged);
    CHECK_FALSE(r->valid_frame_follows());

    // Cut inside a record whose client ID spells a whole valid frame: the frame alone, with torn
    // bytes after it, is still a torn tail.
    std::string fake;
    herd::append_frame(&fake, 1, 999, 3, rec("fake", 1));
    std::string spelled;
    herd::append_frame(&spelled, 1, 21, 3, rec("id" + fake + "tail", 21));
    write_file(path, bytes + spelled.substr(0, spelled.size() - 7));
    r = RecordReader::open(path, &error);
    n = 0;
    while ((s = r->next(&e)) == RecordReader::Status::kEntry) ++n;
    CHECK(n == 20);
    CHECK(s == RecordReader::Status::kDamaged);
    CHECK_FALSE(r->valid_frame_follows());

    // A flipped byte in the middle: valid frames follow.
    std::string flipped = bytes;
    flipped[bytes.size() / 2] ^= 0x40;
    write_file(path, flipped);
    r = RecordReader::open(path, &error);
    while ((s = r->next(&e)) == RecordReader::Status::kEntry) {
    }
    CHECK(s == RecordReader::Status::kDamaged);
    CHECK(r->valid_frame_follows());
    CHECK(r->offset() < bytes.size() / 2 + 1);

    CHECK_FALSE(RecordReader::open(d.path + "/missing", &error));
    CHECK(error.find("missing") != std::string::npos);
  }

  TEST_CASE("the smallest frame (an entry with an empty line) reads back, last in its file too") {
    // A frame is its 8-byte header and an entry of at least FloodLog::kEntryHeader bytes: one of
    // exactly that size, ending the file, is whole, not a torn tail.
    TempDir d;
    std::string bytes;
    herd::append_frame(&bytes, 1, 1, 3, rec("c1", 1));
    herd::append_frame(&bytes, 2, 2, 3, "");
    REQUIRE(bytes.size() > herd::kFrameHeader + FloodLog::kEntryHeader);
    const std::string path = d.path + "/f";
    write_file(path, bytes);
    std::string error;
    auto r = RecordReader::open(path, &error);
    REQUIRE(r);
    FloodLog::Entry e;
    REQUIRE(r->next(&e) == RecordReader::Status::kEntry);
    REQUIRE(r->next(&e) == RecordReader::Status::kEntry);
    CHECK(e.seq == 2);
    CHECK(e.line.empty());
    CHECK(r->next(&e) == RecordReader::Status::kEnd);
  }

  TEST_CASE("what a server wrote comes back: records, progress, history, the backlog's tail") {
    Rig rig;
    REQUIRE(rig.open(Persistence::Fsync::kAlways));
    const std::string run1 = rig.sync->run();
    for (int i = 0; i < 100; ++i) rig.store("c" + std::to_string(i), 10 + i);
    rig.store("c5", 1000);  // a newer version of c5
    rig.backlog->append(FloodLog::Kind::kProgress, 0, "A abcdef 77");
    rig.close();
    CHECK(rig.disk == nullptr);

    LocationTable fresh;
    herd::Recovered recd;
    std::string error;
    REQUIRE(herd::recover(rig.dir.path + "/S", "S", {"A", "B"}, 1 << 20, &fresh, &recd, &error));
    CHECK(fresh.size() == 100);
    std::string got;
    REQUIRE(fresh.lookup("c5", &got, nullptr));
    CHECK(got == rec("c5", 1000));
    CHECK(recd.next_seq == 103);
    REQUIRE(recd.held.count("A"));
    CHECK(recd.held["A"].run == "abcdef");
    CHECK(recd.held["A"].seq == 77);
    REQUIRE(recd.history.size() == 1);
    CHECK(recd.history[0].run == run1);
    CHECK(recd.history[0].last_seq == 102);
    CHECK(recd.backlog_first_seq == 1);
    CHECK(recd.backlog.size() == 102);
    CHECK(recd.entries_from_logs == 102);
    CHECK(recd.notes.empty());
  }

  TEST_CASE("a rewrite leaves a snapshot and the newer logs, and recovery joins them") {
    Rig rig;
    REQUIRE(rig.open(Persistence::Fsync::kEverySec, 8192));
    for (int round = 0; round < 10; ++round) {
      for (int i = 0; i < 200; ++i) rig.store("c" + std::to_string(i), 100 * round + i + 1);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    rig.close();
    std::string snap = read_file(rig.dir.path + "/S/snapshot");
    CHECK_FALSE(snap.empty());
    LocationTable fresh;
    herd::Recovered recd;
    std::string error;
    REQUIRE(herd::recover(rig.dir.path + "/S", "S", {"A", "B"}, 1 << 20, &fresh, &recd, &error));
    CHECK(recd.records_from_snapshot > 0);
    CHECK(fresh.size() == 200);
    std::string got;
    REQUIRE(fresh.lookup("c199", &got, nullptr));
    CHECK(got == rec("c199", 100 * 9 + 199 + 1));
    CHECK(recd.next_seq == 2001);
  }

  TEST_CASE("a newest record log that is empty or holds a torn header is removed, not fatal") {
    // A crash between creating a log (compaction, a gap) and writing its header leaves it empty; a
    // crash inside the header write leaves part of it.
    for (const char* leftover : {"", "\x05\x00"}) {
      CAPTURE(std::string(leftover).size());
      Rig rig;
      REQUIRE(rig.open(Persistence::Fsync::kAlways));
      for (int i = 0; i < 10; ++i) rig.store("c" + std::to_string(i), i + 1);
      rig.close();
      const std::string newest = rig.dir.path + "/S/" + herd::record_log_name(11);
      write_file(newest, leftover);
      LocationTable t;
      herd::Recovered recd;
      std::string error;
      REQUIRE_MESSAGE(herd::recover(rig.dir.path + "/S", "S", {"A", "B"}, 1 << 20, &t, &recd, &error), error);
      CHECK(t.size() == 10);
      CHECK(recd.next_seq == 11);
      REQUIRE(recd.notes.size() == 1);
      CHECK(recd.notes[0].find(std::string(leftover).empty() ? "empty" : "torn header") != std::string::npos);
      CHECK(::access(newest.c_str(), F_OK) != 0);
    }
  }

  TEST_CASE("a write cut short (file size limit) is retried from where it stopped, never twice") {
    // In a child process (the file size limit is per process): records are stored with fsync: always
    // while the log may not grow past its header and a bit; the writer's write is cut short, then
    // fails. A second later the limit goes; the retry must go on from the first byte not written, so
    // that the log holds each frame once and recovery takes it.
    TempDir dir;
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      ::alarm(20);
      ::signal(SIGXFSZ, SIG_IGN);
      Rig rig;
      if (!rig.open(Persistence::Fsync::kAlways)) ::_exit(2);
      rlimit lim{};
      ::getrlimit(RLIMIT_FSIZE, &lim);
      rlimit small = lim;
      small.rlim_cur = 150;  // the header and part of the first batch
      ::setrlimit(RLIMIT_FSIZE, &small);
      for (int i = 0; i < 50; ++i) rig.store("c" + std::to_string(i), i + 1);
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      const bool held_back = rig.disk->durable() < 50;
      ::setrlimit(RLIMIT_FSIZE, &lim);
      const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
      while (rig.disk->durable() < 50 && std::chrono::steady_clock::now() < until) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      const bool all_durable = rig.disk->durable() >= 50;
      rig.close();
      // Hand the directory to the parent.
      const std::string to = dir.path + "/out";
      if (std::rename(rig.dir.path.c_str(), to.c_str()) != 0) ::_exit(3);
      ::_exit(!held_back ? 4 : !all_durable ? 5 : 0);
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);  // 4: never held back by the limit; 5: never durable after it
    LocationTable t;
    herd::Recovered recd;
    std::string error;
    CHECK_MESSAGE(herd::recover(dir.path + "/out/S", "S", {"A", "B"}, 1 << 20, &t, &recd, &error), error);
    CHECK(t.size() == 50);
    CHECK(recd.next_seq == 51);
  }

  TEST_CASE("a new log that cannot be opened leaves the writer on the current one") {
    // Compaction wants a new log, but every name it could take is a directory (EISDIR, root or not).
    // The records must go on into the current log and become durable, and once the way is clear the
    // directory must recover with all of them.
    Rig rig;
    REQUIRE(rig.open(Persistence::Fsync::kAlways, 4096));
    std::vector<std::string> blocked;
    for (uint64_t seq = 2; seq <= 260; ++seq) {
      blocked.push_back(rig.dir.path + "/S/" + herd::record_log_name(seq));
      REQUIRE(::mkdir(blocked.back().c_str(), 0755) == 0);
    }
    // Enough for a compaction, which then fails to open its log; then more records after it.
    for (int round = 0; round < 2; ++round) {
      for (int i = 0; i < 100; ++i) rig.store("c" + std::to_string(100 * round + i), 100 * round + i + 1);
      const uint64_t want = 100 * static_cast<uint64_t>(round + 1);
      const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
      while (rig.disk->durable() < want && std::chrono::steady_clock::now() < until) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      CHECK(rig.disk->durable() >= want);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the writer tries its new log
    }
    rig.close();
    for (const auto& d : blocked) ::rmdir(d.c_str());
    LocationTable t;
    herd::Recovered recd;
    std::string error;
    CHECK_MESSAGE(herd::recover(rig.dir.path + "/S", "S", {"A", "B"}, 1 << 20, &t, &recd, &error), error);
    CHECK(t.size() == 200);
  }

  // Skipped under ThreadSanitizer, whose runtime in a child forked from a process with threads, and
  // allowed none of its own, reports instead of running the test.
  TEST_CASE("a rewrite that gets no thread leaves the writer running; a later compaction rewrites" *
            doctest::skip(kThreadSanitizer)) {
    // In a child process that gives up root and may then start no more threads (RLIMIT_NPROC applies
    // to other users only): the writer's compaction cannot start its rewrite thread. std::thread
    // throws, which must not end the writer thread (and with it the process); the records stay
    // durable, and once threads may start again the next compaction writes the snapshot.
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      ::alarm(20);
      ::close(1);
      ::close(2);  // a failure shows as the exit status, not as test output
      if (::geteuid() == 0 && (::setgid(65534) != 0 || ::setuid(65534) != 0)) ::_exit(3);
      int code = 0;
      {
        Rig rig;
        if (!rig.open(Persistence::Fsync::kAlways, 4096)) ::_exit(4);
        rlimit lim{};
        ::getrlimit(RLIMIT_NPROC, &lim);
        rlimit none = lim;
        none.rlim_cur = 0;
        if (::setrlimit(RLIMIT_NPROC, &none) != 0) ::_exit(3);
        auto wait_durable = [&](uint64_t want) {
          const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
          while (rig.disk->durable() < want && std::chrono::steady_clock::now() < until) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
          }
          return rig.disk->durable() >= want;
        };
        for (int i = 0; i < 200; ++i) rig.store("c" + std::to_string(i), i + 1);
        const bool durable_without = wait_durable(200);
        std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the compaction's try
        const bool no_snapshot = ::access((rig.dir.path + "/S/snapshot").c_str(), F_OK) != 0;
        ::setrlimit(RLIMIT_NPROC, &lim);
        std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // past the retry's wait
        for (int i = 0; i < 200; ++i) rig.store("c" + std::to_string(i), 1000 + i);
        const bool durable_after = wait_durable(400);
        const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        bool snapshot = false;
        while (!snapshot && std::chrono::steady_clock::now() < until) {
          snapshot = ::access((rig.dir.path + "/S/snapshot").c_str(), F_OK) == 0;
          std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        code = !durable_without ? 5 : !no_snapshot ? 6 : !durable_after ? 7 : !snapshot ? 8 : 0;
      }  // (the rig's directory goes with it)
      ::_exit(code);
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    REQUIRE(WIFEXITED(status));  // not killed by an exception leaving the writer thread
    CHECK(WEXITSTATUS(status) == 0);  // 5, 7: not durable; 6: a thread after all; 8: no later rewrite
  }

  TEST_CASE("a failed sync is never retried on its log; a new log and a rewrite make all durable") {
    // Linux reports a lost write to fdatasync once, then calls the pages clean: a second fdatasync
    // on the same file succeeds without them. The stand-in fails one sync of the first log and,
    // like Linux, succeeds afterwards; the writer must not sync that file again, must not count
    // what it holds as durable, and must get everything durable through a new log and a rewrite.
    Rig rig;
    std::mutex mu;
    int calls = 0;
    ino_t failed_inode = 0;
    int syncs_after_failure = 0;  // on the failed file
    rig.datasync = [&](int fd) {
      struct stat st {};
      REQUIRE(::fstat(fd, &st) == 0);
      std::lock_guard lock(mu);
      if (failed_inode && st.st_ino == failed_inode) ++syncs_after_failure;
      if (++calls == 4) {
        failed_inode = st.st_ino;
        errno = EIO;
        return -1;
      }
      return ::fdatasync(fd);
    };
    REQUIRE(rig.open(Persistence::Fsync::kAlways));
    auto wait_durable = [&](uint64_t want) {
      const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      while (rig.disk->durable() < want && std::chrono::steady_clock::now() < until) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
      return rig.disk->durable() >= want;
    };
    uint64_t seq = 0;
    for (int i = 0; i < 40; ++i) {
      seq = rig.store("c" + std::to_string(i), i + 1);
      // One record per sync until the failure, so that the failure comes after records.
      if (i < 8) wait_durable(seq);
    }
    CHECK(wait_durable(seq));  // through the new log and the rewrite
    {
      std::lock_guard lock(mu);
      REQUIRE(failed_inode != 0);
      CHECK(syncs_after_failure == 0);
    }
    rig.close();
    LocationTable t;
    herd::Recovered recd;
    std::string error;
    CHECK_MESSAGE(herd::recover(rig.dir.path + "/S", "S", {"A", "B"}, 1 << 20, &t, &recd, &error), error);
    CHECK(t.size() == 40);
    CHECK(read_file(rig.dir.path + "/S.log").find("fdatasync failed: Input/output error") != std::string::npos);
  }

  TEST_CASE("a write abandoned at stop is the log's last: nothing written whole follows the cut frame") {
    // The disk is full: the writer's batch is half written, and it waits to retry. Then the server
    // stops: the retry fails again and the batch is abandoned, cut. Records stored meanwhile make a
    // second batch, and the disk now has room: were it written, whole frames would follow the cut
    // one, and recovery would take that for damage and refuse the directory.
    Rig rig;
    std::mutex mu;
    bool armed = false;
    int failures = 0;
    bool half_written = false;
    rig.write = [&](int fd, const void* data, size_t size) -> ssize_t {
      std::lock_guard lock(mu);
      if (!armed || failures >= 2) return ::write(fd, data, size);
      if (!half_written) {
        half_written = true;
        return ::write(fd, data, size / 2);
      }
      ++failures;
      errno = ENOSPC;
      return -1;
    };
    REQUIRE(rig.open(Persistence::Fsync::kEverySec));
    {
      std::lock_guard lock(mu);
      armed = true;
    }
    for (int i = 0; i < 10; ++i) rig.store("a" + std::to_string(i), i + 1);
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    for (;;) {
      {
        std::lock_guard lock(mu);
        if (failures >= 1 || std::chrono::steady_clock::now() > until) break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    for (int i = 0; i < 10; ++i) rig.store("b" + std::to_string(i), i + 1);  // the second batch
    rig.close();
    {
      std::lock_guard lock(mu);
      REQUIRE(failures == 2);
    }
    LocationTable t;
    herd::Recovered recd;
    std::string error;
    CHECK_MESSAGE(herd::recover(rig.dir.path + "/S", "S", {"A", "B"}, 1 << 20, &t, &recd, &error), error);
    // The whole frames before the cut come back (never acknowledged as durable, but stored); the
    // second batch is in no file.
    CHECK(t.size() < 10);
    std::string got;
    CHECK_FALSE(t.lookup("b0", &got, nullptr));
  }

  TEST_CASE("after a gap between logs, how far neighbours' histories were held is forgotten") {
    // The writer fell behind (entries 11..19 evicted before they were written), opened a log at 20
    // and wrote progress there, and the process ended before the rewrite that covers the gap.
    Rig rig;
    REQUIRE(rig.open(Persistence::Fsync::kAlways));
    const std::string run = rig.sync->run();
    for (int i = 0; i < 10; ++i) rig.store("c" + std::to_string(i), i + 1);
    rig.backlog->append(FloodLog::Kind::kProgress, 0, "A abcdef 77");
    rig.close();
    std::string later;
    herd::append_frame(&later, herd::kFileHeaderKind, 0, 0, herd::log_header_line("S", run, 20, {"A", "B"}));
    herd::append_frame(&later, static_cast<uint8_t>(FloodLog::Kind::kRecord), 20, 1, rec("late", 50) + " seen=S");
    herd::append_frame(&later, static_cast<uint8_t>(FloodLog::Kind::kProgress), 21, 0, "A abcdef 90");
    write_file(rig.dir.path + "/S/" + herd::record_log_name(20), later);
    LocationTable t;
    herd::Recovered recd;
    std::string error;
    REQUIRE_MESSAGE(herd::recover(rig.dir.path + "/S", "S", {"A", "B"}, 1 << 20, &t, &recd, &error), error);
    CHECK(t.size() == 11);
    CHECK(recd.next_seq == 22);
    CHECK(recd.held.empty());
    bool told = false;
    for (const auto& n : recd.notes) told = told || n.find("forgotten") != std::string::npos;
    CHECK(told);
  }

  TEST_CASE("recovery stops on a file of another server and on a gap inside a log") {
    Rig rig;
    REQUIRE(rig.open(Persistence::Fsync::kNo));
    for (int i = 0; i < 10; ++i) rig.store("c" + std::to_string(i), i + 1);
    rig.close();
    LocationTable t;
    herd::Recovered recd;
    std::string error;
    CHECK_FALSE(herd::recover(rig.dir.path + "/S", "T", {}, 1 << 20, &t, &recd, &error));
    CHECK(error.find("does not match server T") != std::string::npos);

    // A frame removed from the middle of the log: seqs jump.
    std::string log = rig.dir.path + "/S/" + herd::record_log_name(1);
    std::string bytes = read_file(log);
    // Frames: header, then 10 entries. Cut the 4th entry out.
    std::vector<size_t> starts;
    for (size_t at = 0; at < bytes.size();) {
      starts.push_back(at);
      uint32_t len;
      std::memcpy(&len, bytes.data() + at, 4);
      at += herd::kFrameHeader + len;
    }
    REQUIRE(starts.size() == 11);
    write_file(log, bytes.substr(0, starts[4]) + bytes.substr(starts[5]));
    LocationTable t2;
    herd::Recovered recd2;
    CHECK_FALSE(herd::recover(rig.dir.path + "/S", "S", {}, 1 << 20, &t2, &recd2, &error));
    CHECK(error.find("expected the entry with seq 4") != std::string::npos);
  }

  TEST_CASE("recovery refuses headers that a start of this server never writes: runs, seqs") {
    // Found by fuzz_recovery: a header's run that is not a run id went into the history, and so into
    // the SYNC line, which every neighbour then refused as malformed (no catch-up, ever); a first seq
    // or log start of 0, or a seq at the end of the seq space, made the history continue at seq 0,
    // which the backlog reads as "nothing".
    auto log_with = [](const std::string& header, uint64_t seq) {
      std::string b;
      herd::append_frame(&b, herd::kFileHeaderKind, 0, 0, header);
      herd::append_frame(&b, static_cast<uint8_t>(FloodLog::Kind::kRecord), seq, 1, rec("c", 5));
      return b;
    };
    auto snapshot_with = [](const std::string& header) {
      std::string b;
      herd::append_frame(&b, herd::kFileHeaderKind, 0, 0, header);
      herd::append_frame(&b, static_cast<uint8_t>(FloodLog::Kind::kRecord), 0, 0, rec("c", 5));
      herd::append_frame(&b, herd::kSnapshotEndKind, 0, 0, "1");
      return b;
    };
    struct Case {
      const char* what;
      std::string snapshot;  // empty: none
      uint64_t log_first;
      std::string log;       // empty: none
    };
    const uint64_t last = ~uint64_t{0};
    const std::vector<Case> cases = {
        {"a log's run", "", 1, log_with("herd-log 1 S run\x01x 1 A,B", 1)},
        {"a log's run, too long", "", 1, log_with("herd-log 1 S " + std::string(33, 'r') + " 1 A,B", 1)},
        {"a snapshot's run", snapshot_with("herd-snapshot 1 S r:un 3 -"), 0, ""},
        {"a snapshot's earlier run", snapshot_with("herd-snapshot 1 S run 3 ok:1,b\xff" "d:2"), 0, ""},
        {"a snapshot's earlier run, empty", snapshot_with("herd-snapshot 1 S run 3 :2"), 0, ""},
        {"a log start of 0", snapshot_with("herd-snapshot 1 S run 0 -"), 0, ""},
        {"a log's first seq of 0", "", 0, log_with("herd-log 1 S run 0 A,B", 0)},
        {"the last seq", "", last, log_with("herd-log 1 S run " + std::to_string(last) + " A,B", last)},
    };
    for (const Case& c : cases) {
      CAPTURE(std::string(c.what));
      TempDir dir("herd-recovery-header");
      if (!c.snapshot.empty()) write_file(dir.path + "/" + herd::kSnapshotFile, c.snapshot);
      if (!c.log.empty()) write_file(dir.path + "/" + herd::record_log_name(c.log_first), c.log);
      LocationTable t;
      herd::Recovered recd;
      std::string error;
      CHECK_FALSE(herd::recover(dir.path, "S", {"A", "B"}, 1 << 20, &t, &recd, &error));
      CHECK(error.rfind(dir.path + "/", 0) == 0);
    }
    // The same files with proper runs and seqs are taken.
    TempDir dir("herd-recovery-header");
    write_file(dir.path + "/" + herd::kSnapshotFile, snapshot_with("herd-snapshot 1 S run 3 old:2"));
    write_file(dir.path + "/" + herd::record_log_name(3), log_with("herd-log 1 S run 3 A,B", 3));
    LocationTable t;
    herd::Recovered recd;
    std::string error;
    REQUIRE_MESSAGE(herd::recover(dir.path, "S", {"A", "B"}, 1 << 20, &t, &recd, &error), error);
    CHECK(recd.next_seq == 4);
    REQUIRE(recd.history.size() == 2);
    CHECK(recd.history[0].run == "run");
    CHECK(recd.history[1].run == "old");
  }
}

TEST_SUITE("persistence concurrency") {
  TEST_CASE("a cancelled durability waiter never runs and is gone at once; the others run") {
    Rig rig;
    REQUIRE(rig.open(Persistence::Fsync::kAlways));
    reactor::LoopGroup loops(1);
    loops.start();
    reactor::EventLoop& loop = loops.loop(0);
    std::atomic<int> kept{0}, cancelled{0};
    std::atomic<bool> registered{false};
    // Seqs not appended yet: nothing can make them durable before the test stores them.
    const uint64_t far = rig.backlog->next_seq() + 4;
    loop.queue([&] {
      const uint64_t a = rig.disk->when_durable(loop, far, [&] { cancelled.fetch_add(1); });
      rig.disk->when_durable(loop, far, [&] { kept.fetch_add(1); });
      const uint64_t c = rig.disk->when_durable(loop, far + 1, [&] { cancelled.fetch_add(1); });
      CHECK(a != 0);
      CHECK(c != 0);
      CHECK(rig.disk->waiting() == 3);
      rig.disk->cancel_durable(loop, far, a);
      rig.disk->cancel_durable(loop, far + 1, c);
      rig.disk->cancel_durable(loop, far + 1, c);  // twice: nothing
      CHECK(rig.disk->waiting() == 1);
      registered = true;
    });
    while (!registered) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    for (int i = 0; i < 6; ++i) rig.store("c" + std::to_string(i), i + 1);
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (kept.load() == 0 && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // a wrong call would come by now
    CHECK(kept.load() == 1);
    CHECK(cancelled.load() == 0);
    CHECK(rig.disk->waiting() == 0);
    loops.stop();
    rig.close();
  }

  TEST_CASE("writers on two loops, the disk writer, rewrites and durability waiters, all at once") {
    Rig rig;
    REQUIRE(rig.open(Persistence::Fsync::kAlways, 16384));
    reactor::LoopGroup loops(2);
    loops.start();
    std::atomic<int> done{0};
    const int per = 1500;
    std::vector<std::thread> writers;
    for (int w = 0; w < 2; ++w) {
      writers.emplace_back([&, w] {
        for (int i = 0; i < per; ++i) {
          uint64_t seq = rig.store("w" + std::to_string(w) + "-" + std::to_string(i % 300), i + 1);
          if (seq == 0) continue;
          reactor::EventLoop& loop = loops.loop(w);
          // The wait is registered from the loop's thread, as a client session does.
          loop.queue([&, seq, &loop2 = loop] {
            rig.disk->when_durable(loop2, seq, [&, seq] {
              if (rig.disk->durable() >= seq) done.fetch_add(1);
            });
          });
        }
      });
    }
    for (auto& t : writers) t.join();
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (done.load() < 2 * per && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    CHECK(done.load() == 2 * per);
    loops.stop();
    rig.close();
    LocationTable fresh;
    herd::Recovered recd;
    std::string error;
    REQUIRE(herd::recover(rig.dir.path + "/S", "S", {"A", "B"}, 1 << 20, &fresh, &recd, &error));
    CHECK(fresh.size() == 600);
    std::string got;
    REQUIRE(fresh.lookup("w1-299", &got, nullptr));
    CHECK(got == rec("w1-299", per));
  }
}
