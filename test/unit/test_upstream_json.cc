// Upstream JSON that rapidjson 1.1.0 cannot read safely at full precision: a zero with an exponent
// or a long fraction (found by fuzz_upstream_json: "0e77", and later "0." and 25 zeros, made it
// compute __builtin_clzll(0)). defuse_zero_exponents rewrites such zeros as 0.0; both google APIs
// read such bodies as zeros. And a status with a NUL.
#include <doctest/doctest.h>

#include <cmath>
#include <string>

#include "http/message.h"
#include "places/legacy_api.h"
#include "places/new_api.h"
#include "places/upstream_api.h"

using places::defuse_zero_exponents;

TEST_SUITE("places upstream json") {
  TEST_CASE("zeros with exponents or long fractions become 0.0; everything else is untouched") {
    std::string scratch;
    const std::string plain =
        R"({"a": 1e5, "b": -0.5E-3, "c": 10e400, "d": "0e77", "e": [0, 0.0, -0.0, 1.05e2, 10.000000000000000000000000e-30]})";
    std::string_view same = defuse_zero_exponents(plain, &scratch);
    CHECK(same.data() == plain.data());  // nothing to do: no copy
    std::string zeros = R"({"a": 0e77, "b": -0.000E+400, "c": [0e-9,0.00], "s": "x\"0e7", "t": 0})";
    std::string_view fixed = defuse_zero_exponents(zeros, &scratch);
    CHECK(fixed == R"({"a": 0.0 , "b": -0.0       , "c": [0.0 ,0.0 ], "s": "x\"0e7", "t": 0})");
    CHECK(fixed.size() == zeros.size());
  }

  TEST_CASE("a fraction of 25 zeros is rewritten, and only the number's grammatical prefix") {
    std::string scratch;
    const std::string zeros25(25, '0');
    // The fuzzer's input: the number, then bytes that make the body an error. rapidjson converts
    // the number before it finds the error, so the number must be defused all the same.
    std::string body = "0." + zeros25 + "F..";
    std::string_view fixed = defuse_zero_exponents(body, &scratch);
    CHECK(fixed == "0.0" + std::string(24, ' ') + "F..");
    // A second '.' ends the number: the prefix "-0.<25 zeros>" is what rapidjson would convert.
    body = "[-0." + zeros25 + ".5]";
    CHECK(defuse_zero_exponents(body, &scratch) == "[-0.0" + std::string(24, ' ') + ".5]");
    // "00.0e1" is an error at its second byte: nothing of it is converted, and nothing is rewritten,
    // so that no rewrite turns an error into a document.
    body = "[00.0e1, 0.e5, 0e, 0.0e+]";
    CHECK(defuse_zero_exponents(body, &scratch).data() == body.data());
    // A zero inside a number is not a number of its own.
    body = "[20.000e-30, 10." + zeros25 + "]";
    CHECK(defuse_zero_exponents(body, &scratch).data() == body.data());
  }

  TEST_CASE("both APIs read a zero with a huge exponent or a long fraction as zero") {
    http::Response r;
    r.status = 200;
    r.body = R"({"status": "OK", "results": [{"name": "Z", "geometry": {"location": {"lat": 0e77, "lng": -0.0E999}}}]})";
    places::PlacesAnswer legacy = places::LegacyApi("k").interpret(r);
    CHECK(legacy.status == "OK");
    const auto& loc = (*legacy.doc)["results"][0]["geometry"]["location"];
    CHECK(loc["lat"].GetDouble() == 0.0);
    CHECK(loc["lng"].GetDouble() == 0.0);
    r.body = R"({"status": "OK", "results": [{"name": "Z", "geometry": {"location": {"lat": 0.)" +
             std::string(40, '0') + R"(, "lng": -0.)" + std::string(300, '0') + R"(}}}]})";
    legacy = places::LegacyApi("k").interpret(r);
    CHECK(legacy.status == "OK");
    const auto& loc2 = (*legacy.doc)["results"][0]["geometry"]["location"];
    CHECK(loc2["lat"].GetDouble() == 0.0);
    CHECK(loc2["lng"].GetDouble() == 0.0);
    CHECK(std::signbit(loc2["lng"].GetDouble()));
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
