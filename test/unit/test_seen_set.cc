// SeenSet: parsing the seen= extra field, membership, and writing it back.
#include <doctest/doctest.h>

#include <string>

#include "herd/seen_set.h"

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
}
