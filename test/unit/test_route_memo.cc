// RouteMemo: FloodRouter's per-thread memory of routes. A remembered route must be found only for
// exactly the router, sender and extra fields it was worked out for.
#include <doctest/doctest.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "herd/route_memo.h"
#include "test/unit/xorshift.h"

using herd::RouteMemo;

TEST_SUITE("route_memo") {
  TEST_CASE("a route is found for its own router, sender and extra fields only") {
    auto memo = std::make_unique<RouteMemo>();
    CHECK(memo->find(1, "", "") == nullptr);
    RouteMemo::Route* r = memo->put(1, "AB", "C", 5);
    REQUIRE(r != nullptr);
    CHECK(r->owed == 5);
    CHECK_FALSE(r->has_field);
    CHECK(memo->find(1, "AB", "C") == r);
    // The same bytes split elsewhere between sender and extra fields are another key.
    CHECK(memo->find(1, "A", "BC") == nullptr);
    CHECK(memo->find(1, "A", "B") == nullptr);  // a prefix of the key, as long as its extra fields
    CHECK(memo->find(1, "ABC", "") == nullptr);
    CHECK(memo->find(1, "", "ABC") == nullptr);
    CHECK(memo->find(2, "AB", "C") == nullptr);  // another router's
    CHECK(memo->find(1, "AB", "D") == nullptr);
    CHECK(memo->find(1, "AX", "C") == nullptr);
  }

  TEST_CASE("a key that differs in any one byte, at any length, is another key") {
    // The compare goes by words (8 bytes, the last ones overlapping; short views in one load): every
    // byte of every length must still count, in the sender and in the extra fields.
    for (size_t n = 1; n <= 40; ++n) {
      std::string key(n, 'k');
      for (size_t i = 0; i < n; ++i) key[i] = static_cast<char>('a' + (i * 7) % 26);
      for (size_t at = 0; at < n; ++at) {
        CAPTURE(n);
        CAPTURE(at);
        std::string other = key;
        other[at] = static_cast<char>(other[at] ^ 0x20);
        auto memo = std::make_unique<RouteMemo>();
        REQUIRE(memo->put(1, key, "x", 1) != nullptr);
        REQUIRE(memo->put(2, "x", key, 1) != nullptr);
        CHECK(memo->find(1, key, "x") != nullptr);
        CHECK(memo->find(1, other, "x") == nullptr);
        CHECK(memo->find(2, "x", key) != nullptr);
        CHECK(memo->find(2, "x", other) == nullptr);
      }
    }
  }

  TEST_CASE("a field is kept with the links up it was written for") {
    auto memo = std::make_unique<RouteMemo>();
    RouteMemo::Route* r = memo->put(7, "", "", 0b111);
    REQUIRE(r != nullptr);
    RouteMemo::set_field(r, 0b101, " seen=S,A,C");
    CHECK(r->has_field);
    CHECK(r->field_up == 0b101);
    CHECK(r->field() == " seen=S,A,C");
    RouteMemo::set_field(r, 0b111, " seen=S,A,B,C");
    CHECK(r->field_up == 0b111);
    CHECK(r->field() == " seen=S,A,B,C");
    // Too long to keep: the route keeps no field (the router writes it every time).
    RouteMemo::set_field(r, 0b111, std::string(RouteMemo::kMaxField + 1, 'x'));
    CHECK_FALSE(r->has_field);
    RouteMemo::set_field(r, 0b1, std::string(RouteMemo::kMaxField, 'y'));
    CHECK(r->has_field);
    CHECK(r->field() == std::string(RouteMemo::kMaxField, 'y'));
    CHECK(memo->find(7, "", "") == r);
  }

  TEST_CASE("keys longer than kMaxKey are not kept") {
    auto memo = std::make_unique<RouteMemo>();
    const std::string from = "Goloman";
    const std::string fits(RouteMemo::kMaxKey - from.size(), 's');
    const std::string over = fits + "t";
    CHECK(memo->put(1, from, over, 1) == nullptr);
    CHECK(memo->find(1, from, over) == nullptr);
    RouteMemo::Route* r = memo->put(1, from, fits, 2);
    REQUIRE(r != nullptr);
    CHECK(memo->find(1, from, fits) == r);
    CHECK(memo->find(1, from, over) == nullptr);
  }

  TEST_CASE("random use against a model: the last kWays keys put, each with its route") {
    // Used as FloodRouter does: find, and put only on a miss. The model keeps the last kWays keys put
    // (put replaces the oldest) with the owed mask and field of each.
    struct Kept {
      uint64_t owner;
      std::string from, extra;
      uint64_t owed;
      std::optional<std::pair<uint64_t, std::string>> field;
    };
    const std::vector<std::string> froms = {"", "A", "AB", "Hands", "Goloman"};
    const std::vector<std::string> extras = {"", "B", "seen=A", "seen=A,B", "seen=Goloman,Hands,Holiday,Wilkes",
                                             " seen=A", std::string(150, 'z'), std::string(158, 'z')};
    auto memo = std::make_unique<RouteMemo>();
    std::vector<Kept> model;
    XorShift rng{0x5eed1234abcdULL};
    size_t hits = 0, kept = 0, too_long = 0;
    for (int step = 0; step < 20000; ++step) {
      const uint64_t owner = 1 + rng() % 3;
      const std::string& from = froms[rng() % froms.size()];
      const std::string& extra = extras[rng() % extras.size()];
      const Kept* want = nullptr;
      for (const Kept& k : model) {
        if (k.owner == owner && k.from == from && k.extra == extra) want = &k;
      }
      RouteMemo::Route* got = memo->find(owner, from, extra);
      REQUIRE((got != nullptr) == (want != nullptr));
      if (got != nullptr) {
        ++hits;
        CHECK(got->owed == want->owed);
        REQUIRE(got->has_field == want->field.has_value());
        if (got->has_field) {
          CHECK(got->field_up == want->field->first);
          CHECK(got->field() == want->field->second);
        }
        continue;
      }
      const uint64_t owed = rng();
      got = memo->put(owner, from, extra, owed);
      if (from.size() + extra.size() > RouteMemo::kMaxKey) {
        CHECK(got == nullptr);
        ++too_long;
        continue;
      }
      REQUIRE(got != nullptr);
      ++kept;
      Kept k{owner, from, extra, owed, std::nullopt};
      if (rng() % 2) {
        const uint64_t up = rng() & owed;
        const std::string field = " seen=" + std::to_string(rng() % 1000);
        RouteMemo::set_field(got, up, field);
        k.field.emplace(up, field);
      }
      if (model.size() == RouteMemo::kWays) model.erase(model.begin());
      model.push_back(k);
    }
    // Every path ran many times (4 ways among 120 keys, of which 6 too long to keep: about 630
    // hits expected).
    CHECK(hits > 300);
    CHECK(kept > 1000);
    CHECK(too_long > 100);
  }
}
