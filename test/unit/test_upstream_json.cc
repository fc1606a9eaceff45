// Upstream JSON that rapidjson 1.1.0 cannot read safely at full precision: a zero with an exponent
// (found by fuzz_upstream_json: "0e77" made it compute __builtin_clzll(0)). defuse_zero_exponents
// blanks such exponents; both google APIs read such bodies as zeros. And a status with a NUL.
#include <doctest/doctest.h>

#include <string>

#include "http/message.h"
#include "places/legacy_api.h"
#include "places/new_api.h"
#include "places/upstream_api.h"

using places::defuse_zero_exponents;

TEST_SUITE("places upstream json") {
  TEST_CASE("zeros with exponents lose the exponent; everything else is untouched") {
    std::string scratch;
    const std::string plain = R"({"a": 1e5, "b": -0.5E-3, "c": 10e400, "d": "0e77", "e": [0, 0.0, 1.05e2]})";
    std::string_view same = defuse_zero_exponents(plain, &scratch);
    CHECK(same.data() == plain.data());  // nothing to do: no copy
    std::string zeros = R"({"a": 0e77, "b": -0.000E+400, "c": [0e-9,00.0e1], "s": "x\"0e7", "t": 0})";
    std::string_view fixed = defuse_zero_exponents(zeros, &scratch);
    CHECK(fixed == R"({"a": 0   , "b": -0.000     , "c": [0   ,00.0  ], "s": "x\"0e7", "t": 0})");
    CHECK(fixed.size() == zeros.size());
  }

  TEST_CASE("both APIs read a zero with a huge exponent as zero") {
    http::Response r;
    r.status = 200;
    r.body = R"({"status": "OK", "results": [{"name": "Z", "geometry": {"location": {"lat": 0e77, "lng": -0.0E999}}}]})";
    places::PlacesAnswer legacy = places::LegacyApi("k").interpret(r);
    CHECK(legacy.status == "OK");
    const auto& loc = (*legacy.doc)["results"][0]["geometry"]["location"];
    CHECK(loc["lat"].GetDouble() == 0.0);
    CHECK(loc["lng"].GetDouble() == 0.0);
    r.body = R"({"places": [{"id": "z", "displayName": {"text": "Z"}, "location": {"latitude": 0e500, "longitude": 0.0e-500}}]})";
    places::PlacesAnswer fresh = places::NewApi("k").interpret(r);
    CHECK(fresh.doc->IsObject());
  }

  TEST_CASE("a status with a NUL in it is kept whole (found by fuzz_upstream_json)") {
    http::Response r;
    r.status = 200;
    r.body = R"({"status": "\u0000QUEER", "results": []})";
    places::PlacesAnswer a = places::LegacyApi("k").interpret(r);
    CHECK(a.status == std::string("\0QUEER", 6));
  }
}
