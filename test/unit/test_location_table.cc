// LocationTable: newest-wins by client timestamp, the peer tie-break, and (suite "concurrency",
// run under ThreadSanitizer by `make tsan-test`) many threads racing on the same and different IDs.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "herd/location_table.h"

using herd::LocationTable;
using protocol::Location;
using protocol::Timestamp;

namespace {
std::string record(const std::string& server, const std::string& id, int64_t sec, int32_t nsec,
                   const std::string& where = "+1.0+2.0") {
  return "AT " + server + " +0.000000001 " + id + " " + where + " " + std::to_string(sec) + "." +
         std::to_string(nsec);
}
}  // namespace

TEST_SUITE("location_table") {
  TEST_CASE("the first report is stored and can be looked up") {
    LocationTable t;
    std::string r = record("A", "kiwi", 10, 5);
    CHECK(t.offer("kiwi", {10, 5}, r, LocationTable::Source::kClient, nullptr));
    std::string got;
    Location where;
    REQUIRE(t.lookup("kiwi", &got, &where));
    CHECK(got == r);
    CHECK(where.lat == 1.0);
    CHECK(where.lng == 2.0);
    CHECK(t.size() == 1);
    std::string none;
    CHECK_FALSE(t.lookup("kiwi2", &none, nullptr));
    CHECK_FALSE(t.lookup("kiw", &none, nullptr));
    CHECK(none.empty());
  }

  TEST_CASE("only a strictly newer client report replaces; the loser gets the stored record") {
    LocationTable t;
    std::string r1 = record("A", "kiwi", 10, 5);
    REQUIRE(t.offer("kiwi", {10, 5}, r1, LocationTable::Source::kClient, nullptr));
    std::string stored;
    // Equal time, even with a record that would compare greater: a client report must be newer.
    CHECK_FALSE(t.offer("kiwi", {10, 5}, record("Z", "kiwi", 10, 5), LocationTable::Source::kClient, &stored));
    CHECK(stored == r1);
    stored.clear();
    CHECK_FALSE(t.offer("kiwi", {10, 4}, record("A", "kiwi", 10, 4), LocationTable::Source::kClient, &stored));
    CHECK(stored == r1);
    std::string r2 = record("B", "kiwi", 10, 6, "+3.0+4.0");
    CHECK(t.offer("kiwi", {10, 6}, r2, LocationTable::Source::kClient, nullptr));
    std::string got;
    Location where;
    REQUIRE(t.lookup("kiwi", &got, &where));
    CHECK(got == r2);
    CHECK(where.lat == 3.0);
    CHECK(where.lng == 4.0);
    CHECK(t.size() == 1);
  }

  TEST_CASE("peer ties are settled by the record bytes, the same way in any order") {
    std::string low = record("Goloman", "kiwi", 7, 0);
    std::string high = record("Hands", "kiwi", 7, 0);
    REQUIRE(low < high);
    for (int order = 0; order < 2; ++order) {
      LocationTable t;
      const std::string& first = order == 0 ? low : high;
      const std::string& second = order == 0 ? high : low;
      t.offer("kiwi", {7, 0}, first, LocationTable::Source::kPeer, nullptr);
      t.offer("kiwi", {7, 0}, second, LocationTable::Source::kPeer, nullptr);
      std::string got;
      REQUIRE(t.lookup("kiwi", &got, nullptr));
      CHECK(got == high);
      // The same record again is not newer (so floods stop).
      CHECK_FALSE(t.offer("kiwi", {7, 0}, high, LocationTable::Source::kPeer, nullptr));
    }
  }

  TEST_CASE("IDs are bytes: prefixes, invalid UTF-8 and NUL-free binary stay distinct") {
    LocationTable t;
    std::vector<std::string> ids = {"a", "ab", "abc", "\xff\xfe", "\xff", "caf\xc3\xa9", "cafe\xcc\x81", "\xf0\x9f\xa5\x9d"};
    for (size_t i = 0; i < ids.size(); ++i) {
      REQUIRE(t.offer(ids[i], {1, 0}, record("S", ids[i], 1, 0), LocationTable::Source::kClient, nullptr));
    }
    CHECK(t.size() == ids.size());
    for (const auto& id : ids) {
      std::string got;
      REQUIRE(t.lookup(id, &got, nullptr));
      CHECK(got == record("S", id, 1, 0));
    }
  }

  TEST_CASE("grows past many thousands of clients and keeps every one") {
    LocationTable t;
    const int n = 50000;
    for (int i = 0; i < n; ++i) {
      std::string id = "client" + std::to_string(i);
      REQUIRE(t.offer(id, {i, 0}, record("S", id, i, 0), LocationTable::Source::kClient, nullptr));
    }
    CHECK(t.size() == static_cast<size_t>(n));
    for (int i = 0; i < n; i += 997) {
      std::string id = "client" + std::to_string(i), got;
      REQUIRE(t.lookup(id, &got, nullptr));
      CHECK(got == record("S", id, i, 0));
    }
    CHECK(t.memory_bytes() > static_cast<size_t>(n) * 30);
  }
}

namespace {
// A fixed key, so that the tests know which shard and slot every ID hashes to.
constexpr herd::SipKey kKey{0x0123456789abcdefull, 0xfedcba9876543210ull};
size_t shard_of(const std::string& id) {
  return herd::siphash13(kKey, id) >> 56 & (LocationTable::kShards - 1);
}
}  // namespace

TEST_SUITE("location_table bounds") {
  TEST_CASE("past max_clients the least recently updated clients of the storing shard are evicted") {
    const size_t bound = 3 * LocationTable::kShards;
    LocationTable t(bound, SIZE_MAX, kKey);
    // The model: per shard, IDs in the order they were last stored (small shards are exact LRU); the
    // bound is the table's, and a store past it evicts from its own shard, keeping the newest.
    std::vector<std::deque<std::string>> model(LocationTable::kShards);
    size_t total = 0;
    std::mt19937_64 rng(7);
    const int n = 20000;
    uint64_t expect_evicted = 0;
    size_t most = 0;
    for (int i = 0; i < n; ++i) {
      // Mostly new IDs, sometimes an update of a recent one (which makes it the newest again).
      std::string id = (i > 10 && rng() % 4 == 0) ? "id" + std::to_string(i - 1 - rng() % 10)
                                                  : "id" + std::to_string(i);
      auto& q = model[shard_of(id)];
      bool won = t.offer(id, {i, 0}, record("S", id, i, 0), LocationTable::Source::kClient, nullptr);
      auto it = std::find(q.begin(), q.end(), id);
      CHECK(won);
      if (it != q.end()) {
        q.erase(it);
        --total;
      }
      q.push_back(id);
      ++total;
      while (total > bound && q.size() > 1) {
        q.pop_front();
        --total;
        ++expect_evicted;
      }
      most = std::max(most, t.size());
    }
    size_t held = 0;
    for (const auto& q : model) {
      held += q.size();
      for (const auto& id : q) {
        std::string got;
        CHECK_MESSAGE(t.lookup(id, &got, nullptr), id);
      }
    }
    CHECK(t.size() == held);
    CHECK(t.size() <= bound);
    CHECK(most <= bound + 2);  // a store into a shard holding nothing else cannot evict there
    CHECK(t.evictions() == expect_evicted);
    std::string none;
    CHECK_FALSE(t.lookup("id0", &none, nullptr));
  }

  TEST_CASE("evictions begin at max_clients, not when the fullest shard holds its share") {
    // Found by review: with the bound split over the shards, the fullest began to evict at 77% of
    // this bound, and after exactly `bound` distinct clients some 1,000 were gone.
    const size_t bound = 100 * LocationTable::kShards;
    LocationTable t(bound, SIZE_MAX, kKey);
    for (size_t i = 0; i < bound; ++i) {
      const std::string id = "e" + std::to_string(i);
      t.offer(id, {static_cast<int64_t>(i), 0}, record("S", id, static_cast<int64_t>(i), 0),
              LocationTable::Source::kClient, nullptr);
    }
    CHECK(t.evictions() == 0);
    CHECK(t.size() == bound);
    const std::string id = "e-one-more";
    t.offer(id, {1, 0}, record("S", id, 1, 0), LocationTable::Source::kClient, nullptr);
    CHECK(t.evictions() == 1);
    CHECK(t.size() == bound);
  }

  TEST_CASE("evictions begin past max_table_bytes: records of exactly that many bytes all stay") {
    // README: "a store that takes either past its bound evicts": reaching the byte bound exactly is
    // within it. Records of one size (IDs of one length, times of one length), charged as a whole.
    const size_t n = 2000;
    const size_t per_record = LocationTable::charge(record("S", "x1000", 1000, 0).size());
    LocationTable t(SIZE_MAX, n * per_record, kKey);
    for (size_t i = 1000; i < 1000 + n; ++i) {
      const std::string id = "x" + std::to_string(i);
      REQUIRE(record("S", id, static_cast<int64_t>(i), 0).size() == record("S", "x1000", 1000, 0).size());
      t.offer(id, {static_cast<int64_t>(i), 0}, record("S", id, static_cast<int64_t>(i), 0),
              LocationTable::Source::kClient, nullptr);
    }
    CHECK(t.evictions() == 0);
    CHECK(t.size() == n);
    const std::string id = "x9999";
    t.offer(id, {9999, 0}, record("S", id, 9999, 0), LocationTable::Source::kClient, nullptr);
    CHECK(t.evictions() == 1);
    CHECK(t.size() == n);
  }

  TEST_CASE("the byte bound evicts too, and a large record pushes out several small ones") {
    // 1,000 bytes per shard on average.
    LocationTable t(SIZE_MAX, 1000 * LocationTable::kShards, kKey);
    std::string pad(150, '0');
    for (int i = 0; i < 5000; ++i) {
      std::string id = "b" + std::to_string(i);
      t.offer(id, {i, 0}, record("S", id, i, 0, "+1." + pad + "+2.0"), LocationTable::Source::kClient, nullptr);
    }
    CHECK(t.memory_bytes() > 0);
    size_t per_record = LocationTable::charge(record("S", "b4999", 4999, 0, "+1." + pad + "+2.0").size());
    CHECK(t.size() * per_record <= 1000 * LocationTable::kShards);
    CHECK(t.size() * per_record > 1000 * LocationTable::kShards - per_record);  // full, not short of it
    CHECK(t.evictions() == 5000 - t.size());
    // A record bigger than a shard's share still goes in.
    std::string big_id = "big";
    std::string big = record("S", big_id, 1, 0, "+1." + std::string(2000, '0') + "+2.0");
    REQUIRE(t.offer(big_id, {1, 0}, big, LocationTable::Source::kClient, nullptr));
    std::string got;
    CHECK(t.lookup(big_id, &got, nullptr));
    CHECK(got == big);
  }

  TEST_CASE("IDs crafted to share one home slot stay correct through growth, eviction and lookups") {
    // With the key known (only a test knows it), find IDs that land in shard 0 at slot 5 of a
    // 16-slot array (the hash's top 8 bits choose the shard, bits 16 and up the slot): a run of
    // collisions for the prober, tombstones and regrowth.
    std::vector<std::string> crafted;
    for (uint64_t i = 0; crafted.size() < 300; ++i) {
      std::string id = "x" + std::to_string(i);
      uint64_t h = herd::siphash13(kKey, id);
      if ((h >> 56) == 0 && (h >> 16 & 15) == 5) crafted.push_back(id);
    }
    LocationTable t(100, SIZE_MAX, kKey);  // all in shard 0: it holds the table's 100
    for (size_t i = 0; i < crafted.size(); ++i) {
      REQUIRE(t.offer(crafted[i], {static_cast<int64_t>(i), 0}, record("S", crafted[i], i, 0),
                      LocationTable::Source::kClient, nullptr));
      // Every record the shard holds is still found (a deletion that broke a probe run would lose
      // some), with its own bytes; the newest ten are never the sampled oldest.
      size_t found = 0;
      for (size_t k = 0; k <= i; ++k) {
        std::string got;
        if (!t.lookup(crafted[k], &got, nullptr)) continue;
        ++found;
        CHECK(got == record("S", crafted[k], k, 0));
      }
      REQUIRE(found == t.size());
      for (size_t k = i >= 9 ? i - 9 : 0; k <= i; ++k) {
        std::string got;
        CHECK(t.lookup(crafted[k], &got, nullptr));
      }
    }
    CHECK(t.size() == 100);
    CHECK(t.evictions() == 200);
  }
}

TEST_SUITE("location_table bounds") {
  TEST_CASE("a scan interleaved with evictions misses none of the records that stay") {
    // Evictions leave tombstones: the records that survive never move under a scan in progress.
    const size_t per_shard = 40;
    LocationTable t(per_shard * LocationTable::kShards, SIZE_MAX, kKey);
    const int n = static_cast<int>(per_shard * LocationTable::kShards);
    for (int i = 0; i < n; ++i) {
      std::string id = "s" + std::to_string(i);
      t.offer(id, {i, 0}, record("S", id, i, 0), LocationTable::Source::kClient, nullptr);
    }
    LocationTable::ScanPosition pos;
    std::string out;
    int next = n;
    while (!pos.done) {
      t.scan(&pos, &out, 2000);
      // Between chunks, new clients push old ones out of full shards.
      for (int k = 0; k < 50; ++k, ++next) {
        std::string id = "s" + std::to_string(next);
        t.offer(id, {next, 0}, record("S", id, next, 0), LocationTable::Source::kClient, nullptr);
      }
    }
    CHECK(t.evictions() > 0);
    // Every record still held now and stored before the scan began was scanned.
    size_t checked = 0;
    for (int i = 0; i < n; ++i) {
      std::string id = "s" + std::to_string(i), got;
      if (!t.lookup(id, &got, nullptr)) continue;
      ++checked;
      CHECK_MESSAGE(out.find(got + "\n") != std::string::npos, id);
    }
    CHECK(checked > 0);
  }
}

TEST_SUITE("location_table arena") {
  TEST_CASE("clients updated over and over keep memory near their newest records (compaction)") {
    LocationTable t(SIZE_MAX, SIZE_MAX, kKey);
    const int clients = 1000, rounds = 300;
    std::vector<std::string> latest(clients);
    size_t written = 0, live = 0;
    std::mt19937_64 rng(11);
    for (int r = 0; r < rounds; ++r) {
      for (int c = 0; c < clients; ++c) {
        std::string id = "churn" + std::to_string(c);
        // Lengths vary, so replaced records leave holes of every size.
        std::string where = "+1." + std::string(rng() % 40, '5') + "-2.0";
        std::string rec = record("S", id, r, c, where);
        REQUIRE(t.offer(id, {r, c}, rec, LocationTable::Source::kClient, nullptr));
        written += LocationTable::charge(rec.size());
        latest[c] = rec;
      }
    }
    for (const auto& rec : latest) live += LocationTable::charge(rec.size());
    // Without compaction every version written would still be held: about 30 MB here.
    CHECK(written > 20'000'000);
    // With it: the live records, at most half as much again in dead bytes, and per shard the
    // dead bytes allowed before a compaction, a block's unused tail and the slot array.
    CHECK(t.memory_bytes() < live * 3 / 2 + LocationTable::kShards * (4096 + 16384 + 1024));
    for (int c = 0; c < clients; ++c) {
      std::string got;
      REQUIRE(t.lookup("churn" + std::to_string(c), &got, nullptr));
      CHECK(got == latest[c]);
    }
  }

  TEST_CASE("a client's next record that needs the same room is written over in place") {
    LocationTable t(SIZE_MAX, SIZE_MAX, kKey);
    // Seconds and nanoseconds of fixed width, and locations of one length: every version packs to
    // the same size.
    auto version = [](int k, const char* where) {
      return record("S", "inplace", 100000 + k, 100000000 + k, where);
    };
    REQUIRE(t.offer("inplace", {100000, 100000000}, version(0, "+1.0+2.0"), LocationTable::Source::kClient, nullptr));
    const size_t base = t.memory_bytes();
    for (int k = 1; k < 2000; ++k) {
      const std::string rec = version(k, k % 2 ? "+3.0-4.0" : "-5.0+6.0");
      REQUIRE(t.offer("inplace", {100000 + k, 100000000 + k}, rec, LocationTable::Source::kClient, nullptr));
      // Nothing allocated and nothing left dead: were each version placed anew, the block would
      // fill within a few dozen versions and the arena take another.
      REQUIRE(t.memory_bytes() == base);
      std::string got;
      REQUIRE(t.lookup("inplace", &got, nullptr));
      REQUIRE(got == rec);
    }
    // A version that needs more room is placed anew, and the next of its size is written over it.
    const std::string longer = version(2000, "+1.00000000000000000000+2.0");
    REQUIRE(t.offer("inplace", {102000, 100002000}, longer, LocationTable::Source::kClient, nullptr));
    std::string got;
    REQUIRE(t.lookup("inplace", &got, nullptr));
    CHECK(got == longer);
    const std::string again = version(2001, "+1.00000000000000000000+9.0");
    REQUIRE(t.offer("inplace", {102001, 100002001}, again, LocationTable::Source::kClient, nullptr));
    got.clear();
    REQUIRE(t.lookup("inplace", &got, nullptr));
    CHECK(got == again);
    CHECK(t.size() == 1);
  }

  TEST_CASE("records long enough for a block of their own come and go with their memory") {
    LocationTable t(SIZE_MAX, SIZE_MAX, kKey);
    const std::string small = record("S", "big", 1, 0);
    REQUIRE(t.offer("big", {1, 0}, small, LocationTable::Source::kClient, nullptr));
    const size_t base = t.memory_bytes();
    // Letters do not pack (digits would, two to a byte): this one is stored at full length.
    const std::string big = record("S", "big", 2, 0, "+1." + std::string(LocationTable::kAloneBytes, 'x') + "+2.0");
    REQUIRE(t.offer("big", {2, 0}, big, LocationTable::Source::kClient, nullptr));
    CHECK(t.memory_bytes() >= base + big.size());
    std::string got;
    REQUIRE(t.lookup("big", &got, nullptr));
    CHECK(got == big);
    // Replaced by a small record: the big one's block is freed at once.
    const std::string again = record("S", "big", 3, 0);
    REQUIRE(t.offer("big", {3, 0}, again, LocationTable::Source::kClient, nullptr));
    CHECK(t.memory_bytes() < base + big.size());
    got.clear();
    REQUIRE(t.lookup("big", &got, nullptr));
    CHECK(got == again);    // A table destroyed while it holds big records frees them too (the ASan build's leak check).
    REQUIRE(t.offer("big", {4, 0}, record("S", "big", 4, 0, "+1." + std::string(LocationTable::kAloneBytes, 'y') + "+2.0"),
                    LocationTable::Source::kClient, nullptr));
    REQUIRE(t.offer("big2", {4, 0}, record("S", "big2", 4, 0, "+1." + std::string(LocationTable::kAloneBytes, 'z') + "+2.0"),
                    LocationTable::Source::kClient, nullptr));
  }

  TEST_CASE("a time past the packed range is compared from the record's own text") {
    LocationTable t;
    const int64_t late = (int64_t{1} << 34) + 5;  // the year 2514
    auto at = [](int64_t sec, int32_t nsec, const std::string& where) {
      char frac[16];
      std::snprintf(frac, sizeof frac, "%09d", nsec);
      return "AT S +0.000000001 far " + where + " " + std::to_string(sec) + "." + frac;
    };
    REQUIRE(t.offer("far", {late, 500}, at(late, 500, "+1+1"), LocationTable::Source::kClient, nullptr));
    std::string stored;
    CHECK_FALSE(t.offer("far", {late, 499}, at(late, 499, "+2+2"), LocationTable::Source::kClient, &stored));
    CHECK(stored == at(late, 500, "+1+1"));
    CHECK_FALSE(t.offer("far", {late, 500}, at(late, 500, "+0+0"), LocationTable::Source::kPeer, nullptr));
    CHECK(t.offer("far", {late, 500}, at(late, 500, "+3+3"), LocationTable::Source::kPeer, nullptr));
    CHECK(t.offer("far", {late + 1, 0}, at(late + 1, 0, "+4+4"), LocationTable::Source::kClient, nullptr));
    // And back below the packed range, an earlier time loses.
    CHECK_FALSE(t.offer("far", {5, 0}, at(5, 0, "+5+5"), LocationTable::Source::kClient, nullptr));
    std::string got;
    REQUIRE(t.lookup("far", &got, nullptr));
    CHECK(got == at(late + 1, 0, "+4+4"));
  }

  TEST_CASE("a time at the first second past the packed range keeps its order") {
    // 2^34 seconds is the first time the packed form cannot hold (sec << 30 would wrap to 0): it must
    // still beat an earlier report and lose to a later one, just below and just above it.
    LocationTable t;
    const int64_t first_late = int64_t{1} << 34;
    auto at = [](int64_t sec, int32_t nsec) {
      char frac[16];
      std::snprintf(frac, sizeof frac, "%09d", nsec);
      return "AT S +0.000000001 edge +1+1 " + std::to_string(sec) + "." + frac;
    };
    REQUIRE(t.offer("edge", {first_late - 1, 999999999}, at(first_late - 1, 999999999), LocationTable::Source::kClient, nullptr));
    REQUIRE(t.offer("edge", {first_late, 7}, at(first_late, 7), LocationTable::Source::kClient, nullptr));
    std::string stored;
    CHECK_FALSE(t.offer("edge", {first_late - 1, 999999999}, at(first_late - 1, 999999999), LocationTable::Source::kClient, &stored));
    CHECK(stored == at(first_late, 7));
    CHECK_FALSE(t.offer("edge", {1, 7}, at(1, 7), LocationTable::Source::kClient, nullptr));
    CHECK_FALSE(t.offer("edge", {first_late, 6}, at(first_late, 6), LocationTable::Source::kClient, nullptr));
    CHECK(t.offer("edge", {first_late, 8}, at(first_late, 8), LocationTable::Source::kClient, nullptr));
    std::string got;
    REQUIRE(t.lookup("edge", &got, nullptr));
    CHECK(got == at(first_late, 8));
  }

  TEST_CASE("a record whose fourth field is not the client ID is never stored") {
    LocationTable t;
    CHECK_FALSE(t.offer("kiwi", {1, 0}, record("S", "kiwi2", 1, 0), LocationTable::Source::kClient, nullptr));
    CHECK_FALSE(t.offer("kiwi", {1, 0}, "AT S +0.000000001", LocationTable::Source::kClient, nullptr));
    CHECK_FALSE(t.offer("", {1, 0}, "AT S +0.000000001  +1+2 1.0", LocationTable::Source::kClient, nullptr));
    CHECK(t.size() == 0);
    CHECK(t.offer("kiwi", {1, 0}, record("S", "kiwi", 1, 0), LocationTable::Source::kClient, nullptr));
  }

  TEST_CASE("a scan interleaved with compactions sees every client, at one of its versions") {
    // Compaction moves records but never slots: a scan in progress misses no client.
    LocationTable t(SIZE_MAX, SIZE_MAX, kKey);
    const int clients = 3000;
    auto id_of = [](int c) { return "sc" + std::to_string(c); };
    for (int c = 0; c < clients; ++c) {
      t.offer(id_of(c), {0, c}, record("S", id_of(c), 0, c), LocationTable::Source::kClient, nullptr);
    }
    LocationTable::ScanPosition pos;
    std::string out;
    int round = 1;
    while (!pos.done) {
      t.scan(&pos, &out, 1500);
      // Each round's records need more room than the last (more digits, four bytes' worth packed):
      // a version written over its predecessor in place would make no dead bytes to compact.
      const std::string where = "+1." + std::string(8 * static_cast<size_t>(round), '5') + "-2.0";
      for (int c = 0; c < clients; c += 3) {
        t.offer(id_of(c), {round, c}, record("S", id_of(c), round, c, where), LocationTable::Source::kClient, nullptr);
      }
      ++round;
    }
    CHECK(round > 20);  // many chunks, many compactions between them
    for (int c = 0; c < clients; ++c) {
      CHECK_MESSAGE(out.find(" " + id_of(c) + " ") != std::string::npos, id_of(c));
    }
  }
}

TEST_SUITE("location_table packed") {
  TEST_CASE("packed records take far less memory than plain ones, and read back the same") {
    LocationTable packed(SIZE_MAX, SIZE_MAX, kKey, true), plain(SIZE_MAX, SIZE_MAX, kKey, false);
    const int n = 20000;
    auto rec = [](int i) {
      return "AT Goloman +0.263873386 c" + std::to_string(i) + ".load +34.068930-118.445127 1520023934." +
             std::to_string(100000000 + i);
    };
    for (int i = 0; i < n; ++i) {
      const std::string id = "c" + std::to_string(i) + ".load";
      REQUIRE(packed.offer(id, {1520023934, 100000000 + i}, rec(i), LocationTable::Source::kClient, nullptr));
      REQUIRE(plain.offer(id, {1520023934, 100000000 + i}, rec(i), LocationTable::Source::kClient, nullptr));
    }
    // 82-byte records: 24 + 84 bytes each plain, 24 + 44 packed (the slots are the same).
    CHECK(packed.memory_bytes() * 10 < plain.memory_bytes() * 7);
    for (int i = 0; i < n; i += 7) {
      const std::string id = "c" + std::to_string(i) + ".load";
      std::string a, b;
      REQUIRE(packed.lookup(id, &a, nullptr));
      REQUIRE(plain.lookup(id, &b, nullptr));
      CHECK(a == rec(i));
      CHECK(b == rec(i));
    }
    LocationTable::ScanPosition pa, pb;
    std::string sa, sb;
    while (!pa.done) packed.scan(&pa, &sa, 1 << 20);
    while (!pb.done) plain.scan(&pb, &sb, 1 << 20);
    CHECK(sa == sb);  // same key, same slots: the same records in the same order
    CHECK(sa.size() > static_cast<size_t>(n) * 70);  // every record, newline included
  }

  TEST_CASE("records from more servers than there are name codes are kept as they are") {
    LocationTable t(SIZE_MAX, SIZE_MAX, kKey);
    for (int s = 0; s < 400; ++s) {
      const std::string id = "k" + std::to_string(s);
      REQUIRE(t.offer(id, {s, 0}, record("Srv" + std::to_string(s), id, s, 0), LocationTable::Source::kPeer, nullptr));
    }
    for (int s = 0; s < 400; ++s) {
      const std::string id = "k" + std::to_string(s);
      std::string got;
      REQUIRE(t.lookup(id, &got, nullptr));
      CHECK(got == record("Srv" + std::to_string(s), id, s, 0));
      // Ties between peers still compare the records' text, packed or not.
      CHECK_FALSE(t.offer(id, {s, 0}, record("Srv" + std::to_string(s), id, s, 0, "+0.5+0.5"),
                          LocationTable::Source::kPeer, nullptr));
      CHECK(t.holds(id, got));
    }
  }
}

TEST_SUITE("concurrency") {
  TEST_CASE("racing writers on shared IDs end with each ID's newest report") {
    LocationTable t;
    const int threads = 4, ids = 64, rounds = 2000;
    std::atomic<int> wins{0};
    std::vector<std::thread> pool;
    for (int w = 0; w < threads; ++w) {
      pool.emplace_back([&, w] {
        std::string stored;
        for (int r = 0; r < rounds; ++r) {
          // Every writer offers every time value; timestamps interleave across writers.
          int64_t sec = r * threads + w;
          std::string id = "id" + std::to_string((r * 7 + w) % ids);
          stored.clear();
          if (t.offer(id, {sec, 0}, record("W" + std::to_string(w), id, sec, 0),
                      LocationTable::Source::kPeer, &stored)) {
            wins.fetch_add(1);
          } else {
            CHECK(!stored.empty());
          }
          std::string got;
          CHECK(t.lookup(id, &got, nullptr));
        }
      });
    }
    for (auto& th : pool) th.join();
    CHECK(t.size() == static_cast<size_t>(ids));
    CHECK(wins.load() >= ids);
    // The final record of every ID is the one with the largest timestamp offered for it.
    for (int i = 0; i < ids; ++i) {
      std::string id = "id" + std::to_string(i);
      int64_t best = -1;
      int best_w = -1;
      for (int w = 0; w < threads; ++w) {
        for (int r = 0; r < rounds; ++r) {
          if ((r * 7 + w) % ids == i && r * threads + w > best) {
            best = r * threads + w;
            best_w = w;
          }
        }
      }
      std::string got;
      REQUIRE(t.lookup(id, &got, nullptr));
      CHECK(got == record("W" + std::to_string(best_w), id, best, 0));
    }
  }

  TEST_CASE("equal-time peer records from racing writers converge on the greatest") {
    LocationTable t;
    std::vector<std::thread> pool;
    for (int w = 0; w < 4; ++w) {
      pool.emplace_back([&, w] {
        for (int r = 0; r < 500; ++r) {
          std::string id = "tie" + std::to_string(r % 16);
          t.offer(id, {42, 0}, record("S" + std::to_string(w), id, 42, 0), LocationTable::Source::kPeer, nullptr);
        }
      });
    }
    for (auto& th : pool) th.join();
    for (int i = 0; i < 16; ++i) {
      std::string id = "tie" + std::to_string(i), got;
      REQUIRE(t.lookup(id, &got, nullptr));
      CHECK(got == record("S3", id, 42, 0));
    }
  }
}
