// SeenSet: parsing the seen= extra field, membership, and writing it back.
#include <doctest/doctest.h>

#include <algorithm>
#include <sstream>
#include <string>
#include <vector>

#include "herd/seen_set.h"
#include "test/unit/xorshift.h"

using herd::SeenSet;

TEST_SUITE("seen_set") {
  TEST_CASE("parses the names of a seen= field among other extra fields") {
    SeenSet s = SeenSet::parse("hops=3\tseen=Goloman,Hands,,Holiday  other=x");
    CHECK(s.size() == 3);
    CHECK(s.contains("Goloman"));
    CHECK(s.contains("Hands"));
    CHECK(s.contains("Holiday"));
    CHECK_FALSE(s.contains("Hand"));
    CHECK_FALSE(s.contains(""));
    CHECK_FALSE(s.contains("other=x"));
  }

  TEST_CASE("no field, an empty field, or a look-alike give an empty set") {
    CHECK(SeenSet::parse("").size() == 0);
    CHECK(SeenSet::parse("seen=").size() == 0);
    CHECK(SeenSet::parse("unseen=A,B").size() == 0);
    CHECK(SeenSet::parse("SEEN=A").size() == 0);
  }

  TEST_CASE("adding keeps names unique and in order, and writes the field back") {
    SeenSet s;
    std::string out = "AT x";
    s.append_field(out);
    CHECK(out == "AT x");  // nothing for an empty set
    s.add("Wilkes");
    s.add("Hands");
    s.add("Wilkes");
    out.clear();
    s.append_field(out);
    CHECK(out == " seen=Wilkes,Hands");
    CHECK(SeenSet::parse(out).size() == 2);
  }

  TEST_CASE("names alike in length and first bytes are told apart") {
    // A name is compared by its length and first seven bytes first, then by the rest.
    const std::string long_a = "Holiday-east", long_b = "Holiday-west";
    const std::string wide_a = std::string(257, 'a'), wide_b = "a";  // lengths equal modulo 256
    const std::string extra = "seen=Goloman,Hands," + long_a + "," + wide_a;  // the set keeps views
    SeenSet s = SeenSet::parse(extra);
    CHECK(s.contains("Goloman"));
    CHECK_FALSE(s.contains("Holiday"));  // same length as Goloman
    CHECK_FALSE(s.contains("Welsh"));    // same length as Hands
    CHECK(s.contains(long_a));
    CHECK_FALSE(s.contains(long_b));
    CHECK_FALSE(s.contains("Holiday-eas"));
    CHECK_FALSE(s.contains("Holiday-eastt"));
    CHECK(s.contains(wide_a));
    CHECK_FALSE(s.contains(wide_b));
    s.add(long_b);
    s.add(long_b);
    s.add_absent("Welsh");
    CHECK(s.size() == 6);
    CHECK(s.contains(long_b));
    CHECK(s.contains("Welsh"));
    std::string out;
    s.append_field(out);
    CHECK(out == " seen=Goloman,Hands," + long_a + "," + wide_a + "," + long_b + ",Welsh");
  }

  TEST_CASE("random extra fields parse as the field-then-comma rule says") {
    // The reference: split on whitespace, keep the fields that start with seen=, split those on
    // commas, drop empty names and repeats.
    auto reference = [](const std::string& extra) {
      std::vector<std::string> names;
      std::istringstream in(extra);
      for (std::string field; in >> field;) {
        if (field.rfind("seen=", 0) != 0) continue;
        std::string rest = field.substr(5), name;
        std::istringstream parts(rest);
        while (std::getline(parts, name, ',')) {
          if (!name.empty() && std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
        }
      }
      std::string out;
      for (size_t i = 0; i < names.size() && i < SeenSet::kMaxNames; ++i) out += (i ? "," : " seen=") + names[i];
      return out;
    };
    const char* pieces[] = {" ",       "\t",          "\r\n", ",", ",,",   "seen=", "seen=",
                            "Hands",   "Holiday",     "H",    "x=1", "seen", "Holiday-east-annex",
                            "Goloman", "\v\f", "seen=Wilkes,Welsh"};
    XorShift next{0x9e3779b97f4a7c15ull};
    uint64_t x = next.x;
    size_t short_ones = 0, long_ones = 0;  // (up to 63 bytes the parse works on masks)
    for (int round = 0; round < 40000; ++round) {
      std::string extra;
      for (int k = static_cast<int>(x % (round % 2 ? 9 : 24)); k >= 0; --k) {
        x = next();
        extra += pieces[x % (sizeof pieces / sizeof *pieces)];
      }
      (extra.size() <= 63 ? short_ones : long_ones)++;
      CAPTURE(extra);
      std::string got;
      SeenSet::parse(extra).append_field(got);
      REQUIRE(got == reference(extra));
    }
    CHECK(short_ones > 10000);
    CHECK(long_ones > 5000);
  }

  TEST_CASE("past the capacity names are dropped, never misreported") {
    SeenSet s;
    std::string names[SeenSet::kMaxNames + 5];
    for (size_t i = 0; i < SeenSet::kMaxNames + 5; ++i) {
      names[i] = "S" + std::to_string(i);
      s.add(names[i]);
    }
    CHECK(s.size() == SeenSet::kMaxNames);
    CHECK(s.contains("S0"));
    CHECK_FALSE(s.contains(names[SeenSet::kMaxNames]));
  }
  TEST_CASE("a field of 40 names: the first 32 distinct ones are read and written back, in order") {
    std::string extra = "hops=1 seen=";
    for (int i = 0; i < 40; ++i) extra += (i ? "," : "") + std::string("Server") + std::to_string(i);
    extra += " tail=x";
    REQUIRE(extra.size() > 63);  // the byte-at-a-time parse
    SeenSet s = SeenSet::parse(extra);
    CHECK(s.size() == SeenSet::kMaxNames);
    for (int i = 0; i < 40; ++i) {
      CAPTURE(i);
      CHECK(s.contains("Server" + std::to_string(i)) == (i < 32));
    }
    std::string out;
    s.append_field(out);
    std::string want = " seen=";
    for (int i = 0; i < 32; ++i) want += (i ? "," : "") + std::string("Server") + std::to_string(i);
    CHECK(out == want);
    // A full set takes no more names (a server that reads it cannot name itself: it is then sent the
    // record back, and the copy is no news), and written again it is the same field.
    s.add("Self");
    CHECK_FALSE(s.contains("Self"));
    std::string again;
    SeenSet::parse(out).append_field(again);
    CHECK(again == want);
    // Repeated names do not take room: 40 names of which 8 repeat are 32 distinct ones.
    std::string repeats = "seen=";
    for (int i = 0; i < 40; ++i) repeats += (i ? "," : "") + std::string("S") + std::to_string(i < 8 ? i : i - 8);
    SeenSet r = SeenSet::parse(repeats);
    CHECK(r.size() == 32);
    CHECK(r.contains("S31"));
  }
}
