// Catch-up building blocks: the backlog (FloodLog: seqs, masks, eviction, readers that fall behind),
// the catch-up lines (protocol/sync_line), where a neighbour resumes (SyncState), the table scan used
// for full transfers, and (suite "concurrency", under ThreadSanitizer by `make tsan-test`) writers
// racing readers on the backlog and a scan racing writers on the table.
#include <doctest/doctest.h>

#include <atomic>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "herd/flood_log.h"
#include "herd/location_table.h"
#include "herd/sync_state.h"
#include "protocol/sync_line.h"

using herd::FloodLog;
using herd::LocationTable;
using herd::SyncState;

namespace {

// Every entry readable from `seq` on: (seq, mask, line), or `behind` set.
std::vector<FloodLog::Entry> read_all(const FloodLog& log, FloodLog::Cursor* c, std::string* keep,
                                      bool* behind, size_t step = 100) {
  std::vector<FloodLog::Entry> out;
  *behind = false;
  keep->clear();
  keep->reserve(1 << 24);  // entries point into it
  for (;;) {
    size_t before = keep->size();
    if (log.read(c, keep, step) == FloodLog::ReadStatus::kBehind) {
      *behind = true;
      break;
    }
    if (keep->size() == before) break;
    std::string_view raw = std::string_view(*keep).substr(before);
    FloodLog::Entry e;
    while (FloodLog::next_entry(&raw, &e)) out.push_back(e);
    REQUIRE(raw.empty());
  }
  return out;
}

std::string rec(const std::string& id, int sec) {
  return "AT S +0.000000001 " + id + " +1.0+2.0 " + std::to_string(sec);
}

}  // namespace

TEST_SUITE("catch_up") {
  TEST_CASE("backlog: entries come back in order with their seqs, masks and kinds") {
    FloodLog log(1 << 20, 7);
    CHECK(log.next_seq() == 7);
    CHECK(log.oldest_seq() == 7);
    CHECK(log.append(FloodLog::Kind::kRecord, 0b101, "first") == 7);
    CHECK(log.append(FloodLog::Kind::kProgress, 0, "Hands abc 12") == 8);
    CHECK(log.append(FloodLog::Kind::kRecord, 0b010, std::string(70000, 'x')) == 9);  // over a block
    CHECK(log.next_seq() == 10);
    std::string keep;
    bool behind;
    FloodLog::Cursor c = log.cursor_at(7);
    auto got = read_all(log, &c, &keep, &behind);
    CHECK_FALSE(behind);
    REQUIRE(got.size() == 3);
    CHECK(got[0].seq == 7);
    CHECK(got[0].mask == 0b101);
    CHECK(got[0].kind == FloodLog::Kind::kRecord);
    CHECK(got[0].line == "first");
    CHECK(got[1].kind == FloodLog::Kind::kProgress);
    CHECK(got[1].line == "Hands abc 12");
    CHECK(got[2].line.size() == 70000);
    CHECK(c.seq == 10);
    // A cursor at the head reads nothing until something is appended.
    CHECK(read_all(log, &c, &keep, &behind).empty());
    log.append(FloodLog::Kind::kRecord, 1, "late");
    got = read_all(log, &c, &keep, &behind);
    REQUIRE(got.size() == 1);
    CHECK(got[0].line == "late");
    CHECK(got[0].seq == 10);
  }

  TEST_CASE("backlog: a cursor placed anywhere reads from exactly there") {
    FloodLog log(1 << 20, 1);
    for (int i = 1; i <= 5000; ++i) log.append(FloodLog::Kind::kRecord, 1, rec("c" + std::to_string(i), i));
    for (uint64_t start : {1ull, 2ull, 777ull, 4096ull, 5000ull, 5001ull}) {
      FloodLog::Cursor c = log.cursor_at(start);
      std::string keep;
      bool behind;
      auto got = read_all(log, &c, &keep, &behind, 1000);
      CHECK_FALSE(behind);
      REQUIRE(got.size() == 5001 - start);
      if (!got.empty()) {
        CHECK(got.front().seq == start);
        CHECK(got.front().line == rec("c" + std::to_string(start), static_cast<int>(start)));
        CHECK(got.back().seq == 5000);
      }
    }
  }

  TEST_CASE("backlog: entries just over half a block do not hold twice the capacity") {
    // Each such entry leaves the rest of its block unused: what counts is the blocks' room.
    const size_t cap = 8 * FloodLog::kMaxBlockBytes;  // blocks of kMaxBlockBytes
    FloodLog log(cap, 1);
    const std::string line(FloodLog::kMaxBlockBytes / 2 + 100, 'x');
    for (int i = 0; i < 100; ++i) log.append(FloodLog::Kind::kRecord, 1, line);
    const uint64_t held = log.next_seq() - log.oldest_seq();  // one block each
    CHECK(held * FloodLog::kMaxBlockBytes <= cap + FloodLog::kMaxBlockBytes);
    CHECK(held >= 8);
    CHECK(log.bytes_held() == held * FloodLog::kMaxBlockBytes);
  }

  TEST_CASE("backlog: bounded; a reader whose position was evicted is told it is behind") {
    const size_t cap = 64 * 1024;
    FloodLog log(cap, 1);
    FloodLog::Cursor slow = log.cursor_at(1);
    for (int i = 0; i < 20000; ++i) log.append(FloodLog::Kind::kRecord, 1, rec("c" + std::to_string(i), i));
    CHECK(log.bytes_held() <= cap + FloodLog::kMaxBlockBytes);
    CHECK(log.oldest_seq() > 1);
    CHECK(log.next_seq() == 20001);
    std::string out;
    CHECK(log.read(&slow, &out, 1 << 20) == FloodLog::ReadStatus::kBehind);
    CHECK(out.empty());
    // What is still held reads back complete, up to the newest.
    FloodLog::Cursor c = log.cursor_at(log.oldest_seq());
    bool behind;
    auto got = read_all(log, &c, &out, &behind, 4096);
    CHECK_FALSE(behind);
    REQUIRE_FALSE(got.empty());
    CHECK(got.back().seq == 20000);
    for (size_t i = 1; i < got.size(); ++i) CHECK(got[i].seq == got[i - 1].seq + 1);
    CHECK(log.cursor_at(1).seq == 1);  // a cursor below the oldest is behind, not moved up
    CHECK(log.read(&c, &out, 10) == FloodLog::ReadStatus::kOk);
  }

  TEST_CASE("backlog: a reader that nothing evicted was owed to moves on instead of falling behind") {
    FloodLog log(16 * 1024, 1);
    FloodLog::Cursor idle = log.cursor_at(1), owed = log.cursor_at(1), all = log.cursor_at(1);
    for (int i = 0; i < 3000; ++i) log.append(FloodLog::Kind::kRecord, 0b01, rec("c" + std::to_string(i), i));
    REQUIRE(log.oldest_seq() > 1);
    std::string out;
    size_t looked;
    uint64_t n = 0;
    // Link 1 (bit 0b10) was owed none of it: it carries on from the oldest entry held.
    CHECK(log.read_owed(&idle, 0b10, &out, 1 << 16, &looked, &n) == FloodLog::ReadStatus::kOk);
    CHECK(idle.seq > log.oldest_seq());
    CHECK(out.empty());
    // Link 0 was owed what was evicted: behind.
    CHECK(log.read_owed(&owed, 0b01, &out, 1 << 16, &looked, &n) == FloodLog::ReadStatus::kBehind);
    // The persistence writer reads everything: behind as soon as anything it had not read went.
    CHECK(log.read(&all, &out, 1 << 16) == FloodLog::ReadStatus::kBehind);
    // Past the remembered evictions nothing is known: behind, to be safe.
    FloodLog tiny(4096, 1);
    FloodLog::Cursor early = tiny.cursor_at(1);
    for (int i = 0; i < 800000; ++i) tiny.append(FloodLog::Kind::kRecord, 0b01, "x");  // > 4096 blocks
    CHECK(tiny.read_owed(&early, 0b10, &out, 100, &looked, &n) == FloodLog::ReadStatus::kBehind);
  }

  TEST_CASE("backlog: what a reader had read of an evicted block does not make it behind") {
    // A link is woken only for what it is owed, so it sits where it last read: often in the middle of
    // a block whose earlier entries were owed to it. Their eviction must not cost a full transfer.
    FloodLog log(16 * 1024, 1);
    FloodLog::Cursor quiet = log.cursor_at(1), owed_more = log.cursor_at(1);
    log.append(FloodLog::Kind::kRecord, 0b011, rec("a", 1));
    std::string out;
    size_t looked;
    uint64_t n = 0;
    CHECK(log.read_owed(&quiet, 0b01, &out, 1 << 16, &looked, &n) == FloodLog::ReadStatus::kOk);
    CHECK(log.read_owed(&owed_more, 0b10, &out, 1 << 16, &looked, &n) == FloodLog::ReadStatus::kOk);
    CHECK(out == rec("a", 1) + "\n" + rec("a", 1) + "\n");
    REQUIRE(quiet.seq == 2);
    // Still in the first block: one more record owed to link 1 only, then enough for others to evict it.
    log.append(FloodLog::Kind::kRecord, 0b10, rec("b", 2));
    for (int i = 0; i < 3000; ++i) log.append(FloodLog::Kind::kRecord, 0b100, rec("c" + std::to_string(i), i));
    REQUIRE(log.oldest_seq() > 3);
    out.clear();
    // Link 0 had everything it was owed: it moves on to the oldest entry held.
    CHECK(log.read_owed(&quiet, 0b01, &out, 1 << 16, &looked, &n) == FloodLog::ReadStatus::kOk);
    CHECK(quiet.seq > log.oldest_seq());
    CHECK(out.empty());
    // Link 1 was owed seq 2 after its position, in the same block: behind.
    CHECK(log.read_owed(&owed_more, 0b10, &out, 1 << 16, &looked, &n) == FloodLog::ReadStatus::kBehind);
  }

  TEST_CASE("backlog: a link reads only the records owed to it, as lines") {
    FloodLog log(1 << 20, 1);
    log.append(FloodLog::Kind::kRecord, 0b01, "one");
    log.append(FloodLog::Kind::kRecord, 0b10, "two");
    log.append(FloodLog::Kind::kProgress, 0b11, "A r 1");  // never a flood line
    log.append(FloodLog::Kind::kRecord, 0b11, "three");
    FloodLog::Cursor c = log.cursor_at(1);
    std::string lines;
    size_t looked = 0;
    uint64_t n = 0;
    CHECK(log.read_owed(&c, 0b10, &lines, 1 << 16, &looked, &n) == FloodLog::ReadStatus::kOk);
    CHECK(lines == "two\nthree\n");
    CHECK(n == 2);
    CHECK(looked > 0);
    CHECK(c.seq == 5);
    lines.clear();
    CHECK(log.read_owed(&c, 0b10, &lines, 1 << 16, &looked, &n) == FloodLog::ReadStatus::kOk);
    CHECK(lines.empty());
    CHECK(n == 0);
    CHECK(looked == 0);
    FloodLog small(4096, 1);
    FloodLog::Cursor old = small.cursor_at(1);
    for (int i = 0; i < 2000; ++i) small.append(FloodLog::Kind::kRecord, 1, rec("x", i));
    CHECK(small.read_owed(&old, 1, &lines, 100, &looked, &n) == FloodLog::ReadStatus::kBehind);
  }

  TEST_CASE("catch-up lines parse and print back") {
    using protocol::SyncKind;
    protocol::RunHead h[2] = {{"abc", 17}, {"Z9", 0}};
    std::string out;
    protocol::append_sync(out, "deadbeef", h, 2);
    CHECK(out == "SYNC deadbeef abc:17 Z9:0\n");
    auto s = protocol::parse_sync_line("SYNC deadbeef abc:17 Z9:0");
    REQUIRE(s.kind == SyncKind::kSync);
    CHECK(s.run == "deadbeef");
    REQUIRE(s.history_size == 2);
    CHECK(s.history[0].run == "abc");
    CHECK(s.history[0].seq == 17);
    CHECK(s.history[1].run == "Z9");
    out.clear();
    protocol::append_sync_from(out, "-", 0);
    protocol::append_bulk(out, 12);
    protocol::append_mark(out, 18446744073709551615ull);
    CHECK(out == "SYNC-FROM - 0\nBULK 12\nMARK 18446744073709551615\n");
    s = protocol::parse_sync_line("SYNC-FROM abc 99");
    CHECK(s.kind == SyncKind::kSyncFrom);
    CHECK(s.run == "abc");
    CHECK(s.number == 99);
    CHECK(!s.everything);
    CHECK(protocol::parse_sync_line("SYNC-FROM - 0").kind == SyncKind::kSyncFrom);
    out.clear();
    protocol::append_sync_from(out, "abc", 7, true);
    CHECK(out == "SYNC-FROM abc 7 ALL\n");
    s = protocol::parse_sync_line("SYNC-FROM abc 7 ALL");
    CHECK(s.kind == SyncKind::kSyncFrom);
    CHECK(s.number == 7);
    CHECK(s.everything);
    CHECK(protocol::parse_sync_line("  BULK\t12 ").number == 12);
    CHECK(protocol::parse_sync_line("MARK 5").kind == SyncKind::kMark);
    // Not catch-up lines at all.
    for (const char* l : {"", "AT Hands +0.5 x +1+2 3", "HERD Hands", "sync abc", "MARKS 5"}) {
      CHECK(protocol::parse_sync_line(l).kind == SyncKind::kNone);
    }
    // The quick test the receiver makes first: false only for lines that parse as kNone.
    for (const char* l : {"", "AT Hands +0.5 x +1+2 3", "HERD Hands", "sync abc"}) CHECK_FALSE(protocol::may_be_sync_line(l));
    for (const char* l : {"SYNC abc", " BULK 3", "MARK 5", "SYNC-FROM abc 1", "MARKS 5", "BULK"}) {
      CHECK(protocol::may_be_sync_line(l));
    }
    // Catch-up verbs with bad fields.
    for (const char* l : {"SYNC", "SYNC a-b", "SYNC abc def", "SYNC abc def:", "SYNC abc :5", "SYNC abc d:-1",
                          "SYNC-FROM abc", "SYNC-FROM abc 1 2", "SYNC-FROM abc x", "SYNC-FROM abc 1 all", "SYNC-FROM abc 1 ALL x", "BULK", "BULK -1",
                          "BULK 1 2", "MARK 18446744073709551616", "MARK 1e3",
                          "SYNC 012345678901234567890123456789012"}) {
      CHECK_MESSAGE(protocol::parse_sync_line(l).kind == SyncKind::kBad, l);
    }
  }

  TEST_CASE("catch-up lines at their limits: a 32-byte run, eight earlier runs, a seq of 2^64-1") {
    using protocol::SyncKind;
    // A run ID is 1..kMaxRunLength letters and digits: the longest is accepted, one more is not.
    const std::string longest(protocol::kMaxRunLength, 'a');
    CHECK(protocol::is_run_id(longest));
    CHECK_FALSE(protocol::is_run_id(longest + "a"));
    const std::string sync = "SYNC " + longest + " " + longest + ":1";  // (the views point into it)
    auto s = protocol::parse_sync_line(sync);
    REQUIRE(s.kind == SyncKind::kSync);
    CHECK(s.run == longest);
    // As many earlier runs as a SYNC line holds parse; one more makes the line bad (never written
    // past the history's end).
    std::string full = "SYNC cur";
    for (size_t i = 0; i < protocol::SyncLine::kMaxHistory; ++i) full += " r" + std::to_string(i) + ":" + std::to_string(i);
    s = protocol::parse_sync_line(full);
    REQUIRE(s.kind == SyncKind::kSync);
    REQUIRE(s.history_size == protocol::SyncLine::kMaxHistory);
    CHECK(s.history[protocol::SyncLine::kMaxHistory - 1].run == "r7");
    CHECK(s.history[protocol::SyncLine::kMaxHistory - 1].seq == 7);
    CHECK(protocol::parse_sync_line(full + " r8:8").kind == SyncKind::kBad);
    // Every uint64_t seq append_mark can write reads back, the largest (20 digits) included.
    s = protocol::parse_sync_line("MARK 18446744073709551615");
    REQUIRE(s.kind == SyncKind::kMark);
    CHECK(s.number == 18446744073709551615ull);
    s = protocol::parse_sync_line("SYNC-FROM abc 18446744073709551615");
    REQUIRE(s.kind == SyncKind::kSyncFrom);
    CHECK(s.number == 18446744073709551615ull);
  }

  TEST_CASE("backlog: the persistence reader is behind when records owed to no neighbour were evicted") {
    // A server with a data_dir keeps every stored record in the backlog, owed to no one or not (a
    // leaf's records, progress entries). The writer must learn it lost them, whatever their masks.
    FloodLog log(16 * 1024, 1);
    FloodLog::Cursor all = log.cursor_at(1);
    for (int i = 0; i < 3000; ++i) log.append(FloodLog::Kind::kRecord, 0, rec("c" + std::to_string(i), i));
    REQUIRE(log.oldest_seq() > 1);
    std::string out;
    CHECK(log.read(&all, &out, 1 << 16) == FloodLog::ReadStatus::kBehind);
    CHECK(out.empty());
    CHECK(all.seq == 1);
  }

  TEST_CASE("backlog: the newest entry is held even when one block of it is over the capacity") {
    // The capacity bounds what is held to "the capacity and one block, or one line": the entry just
    // appended is never evicted, so its readers (the links it is owed to) still get it.
    for (size_t cap : {size_t{1000}, size_t{16 * 1024}}) {
      CAPTURE(cap);
      FloodLog log(cap, 1);
      const std::string line(cap + 5000, 'x');
      CHECK(log.append(FloodLog::Kind::kRecord, 1, line) == 1);
      CHECK(log.oldest_seq() == 1);
      CHECK(log.next_seq() == 2);
      FloodLog::Cursor c = log.cursor_at(1);
      std::string keep;
      bool behind;
      auto got = read_all(log, &c, &keep, &behind);
      CHECK_FALSE(behind);
      REQUIRE(got.size() == 1);
      CHECK(got[0].line == line);
      // The next one evicts it and is held itself.
      CHECK(log.append(FloodLog::Kind::kRecord, 1, "small") == 2);
      CHECK(log.oldest_seq() == 2);
      c = log.cursor_at(2);
      got = read_all(log, &c, &keep, &behind);
      CHECK_FALSE(behind);
      REQUIRE(got.size() == 1);
      CHECK(got[0].line == "small");
    }
  }

  TEST_CASE("a restarted server asks each neighbour for everything until its first catch-up from it") {
    SyncState first("cur", {});
    CHECK(!first.wants_everything_from("Hands"));  // a first start lost nothing
    SyncState again("cur", {{"prev", 100}});
    CHECK(again.wants_everything_from("Hands"));
    CHECK(again.wants_everything_from("Welsh"));
    again.catch_up_completed("Hands");
    CHECK(!again.wants_everything_from("Hands"));
    CHECK(again.wants_everything_from("Welsh"));
  }

  TEST_CASE("where a neighbour resumes: the current run, earlier runs up to what survived, else nothing") {
    SyncState s("cur", {{"prev", 100}, {"older", 40}});
    CHECK(s.resume_point("cur", 123) == 123u);
    CHECK(s.resume_point("prev", 90) == 90u);
    CHECK(s.resume_point("prev", 130) == 100u);  // it holds records this server lost: all that survived
    CHECK(s.resume_point("older", 40) == 40u);
    CHECK_FALSE(s.resume_point("other", 5).has_value());
    std::string line;
    s.append_sync_line(line);
    CHECK(line == "SYNC cur prev:100 older:40\n");
    CHECK(SyncState::new_run_id().size() == 16);
    CHECK(SyncState::new_run_id() != SyncState::new_run_id());

    CHECK_FALSE(s.held("Hands").has_value());
    s.set_held("Hands", "r1", 10);
    s.set_held("Hands", "r1", 7);  // within a run it only grows
    CHECK(s.held("Hands")->seq == 10);
    s.set_held("Hands", "r2", 3);  // a new run of the neighbour replaces the old one
    CHECK(s.held("Hands")->run == "r2");
    CHECK(s.held("Hands")->seq == 3);
    CHECK(s.all_held().size() == 1);
  }

  TEST_CASE("a table scan yields every record once, in bounded chunks") {
    LocationTable t;
    const int n = 20000;
    for (int i = 0; i < n; ++i) {
      std::string id = "c" + std::to_string(i);
      t.offer(id, {i, 0}, rec(id, i), LocationTable::Source::kClient, nullptr);
    }
    LocationTable::ScanPosition pos;
    std::string out;
    size_t total = 0, chunks = 0;
    while (!pos.done) {
      out.clear();
      total += t.scan(&pos, &out, 4096);
      CHECK(out.size() < 4096 + 200);
      ++chunks;
    }
    CHECK(total == static_cast<size_t>(n));
    CHECK(chunks > 100);
    // Every line is one of the records.
    pos = {};
    out.clear();
    while (!pos.done) t.scan(&pos, &out, 1 << 20);
    std::set<std::string> lines;
    size_t start = 0;
    while (start < out.size()) {
      size_t nl = out.find('\n', start);
      lines.insert(out.substr(start, nl - start));
      start = nl + 1;
    }
    CHECK(lines.size() == static_cast<size_t>(n));
    CHECK(lines.count(rec("c777", 777)) == 1);
    LocationTable empty;
    pos = {};
    CHECK(empty.scan(&pos, &out, 10) == 0);
    CHECK(pos.done);
  }

  TEST_CASE("a scan can leave out what was stored after it began (by stamp)") {
    struct Stamp final : LocationTable::Observer {
      uint64_t next = 1;
      uint64_t on_stored(std::string_view) override { return next; }
    } stamp;
    LocationTable t;
    for (int i = 0; i < 100; ++i) {
      std::string id = "c" + std::to_string(i);
      stamp.next = static_cast<uint64_t>(i + 1);
      t.offer(id, {i, 0}, rec(id, i), LocationTable::Source::kClient, nullptr, &stamp);
    }
    LocationTable::ScanPosition pos;
    std::string out;
    size_t n = 0;
    while (!pos.done) n += t.scan(&pos, &out, 1 << 20, 50);
    CHECK(n == 50);  // stamps 1..50
    CHECK(out.find(rec("c49", 49) + "\n") != std::string::npos);
    CHECK(out.find(rec("c50", 50) + "\n") == std::string::npos);
    pos = {};
    n = 0;
    while (!pos.done) n += t.scan(&pos, &out, 1 << 20);
    CHECK(n == 100);
  }

  TEST_CASE("the table tells its observer of stored records only") {
    struct Seen final : LocationTable::Observer {
      std::vector<std::string> got;
      uint64_t on_stored(std::string_view r) override {
        got.emplace_back(r);
        return 0;
      }
    } seen;
    LocationTable t;
    CHECK(t.offer("a", {5, 0}, rec("a", 5), LocationTable::Source::kClient, nullptr, &seen));
    CHECK_FALSE(t.offer("a", {4, 0}, rec("a", 4), LocationTable::Source::kClient, nullptr, &seen));
    CHECK(t.offer("a", {6, 0}, rec("a", 6), LocationTable::Source::kClient, nullptr, &seen));
    CHECK(seen.got == std::vector<std::string>{rec("a", 5), rec("a", 6)});
  }
}

TEST_SUITE("catch_up concurrency") {
  TEST_CASE("backlog: writers racing readers; every reader sees each writer's entries in order") {
    FloodLog log(256 * 1024, 1);
    const int writers = 3, per = 20000;
    std::atomic<bool> done{false};
    std::atomic<int> behind_seen{0};
    auto reader = [&](bool slow) {
      FloodLog::Cursor c = log.cursor_at(1);
      std::map<int, int> last;  // writer -> last index seen
      std::string raw;
      bool ok = true;
      while (true) {
        bool finished = done.load();
        raw.clear();
        if (log.read(&c, &raw, 8192) == FloodLog::ReadStatus::kBehind) {
          behind_seen.fetch_add(1);
          c = log.cursor_at(log.oldest_seq());
          last.clear();
          continue;
        }
        std::string_view v = raw;
        FloodLog::Entry e;
        while (FloodLog::next_entry(&v, &e)) {
          int w = e.line[0] - '0';
          int i = std::stoi(std::string(e.line.substr(2)));
          if (last.count(w) && i <= last[w]) ok = false;
          last[w] = i;
        }
        if (raw.empty() && finished) break;
        if (slow) std::this_thread::sleep_for(std::chrono::microseconds(50));
      }
      CHECK(ok);
    };
    std::thread r1(reader, false), r2(reader, true);
    std::vector<std::thread> ws;
    for (int w = 0; w < writers; ++w) {
      ws.emplace_back([&, w] {
        for (int i = 0; i < per; ++i) log.append(FloodLog::Kind::kRecord, 1, std::to_string(w) + " " + std::to_string(i));
      });
    }
    for (auto& t : ws) t.join();
    done = true;
    r1.join();
    r2.join();
    CHECK(log.next_seq() == 1 + static_cast<uint64_t>(writers) * per);
  }

  TEST_CASE("a scan racing writers yields every record that was there before it began") {
    LocationTable t;
    const int before = 20000;
    for (int i = 0; i < before; ++i) {
      std::string id = "old" + std::to_string(i);
      t.offer(id, {1, 0}, rec(id, 1), LocationTable::Source::kClient, nullptr);
    }
    std::atomic<bool> stop{false};
    std::thread writer([&] {
      // New clients make shards grow (rehash) while the scan walks them; old ones get newer records.
      for (int i = 0; !stop.load(); ++i) {
        std::string id = "new" + std::to_string(i);
        t.offer(id, {1, 0}, rec(id, 1), LocationTable::Source::kClient, nullptr);
        std::string old = "old" + std::to_string(i % before);
        t.offer(old, {2 + i, 0}, rec(old, 2 + i), LocationTable::Source::kClient, nullptr);
      }
    });
    LocationTable::ScanPosition pos;
    std::string out;
    while (!pos.done) t.scan(&pos, &out, 2048);
    stop = true;
    writer.join();
    std::set<std::string> ids;
    size_t start = 0;
    while (start < out.size()) {
      size_t nl = out.find('\n', start);
      std::string line = out.substr(start, nl - start);
      ids.insert(line.substr(18, line.find(' ', 18) - 18));
      start = nl + 1;
    }
    int missing = 0;
    for (int i = 0; i < before; ++i) missing += ids.count("old" + std::to_string(i)) ? 0 : 1;
    CHECK(missing == 0);
  }
}
