// Upstream JSON that rapidjson 1.1.0 cannot convert safely: fuzz_upstream_json found "0e77" and
// "0." with 25 zeros (its full-precision path computed __builtin_clzll(0)), and "0e0e0067" after a
// first fix rewrote zeros in the text; the test below found "0.<330 zeros>5e-30", which reads its
// table of powers of ten out of bounds (a crash). read_json leaves numbers to the C library; these
// tests hold it to strtod over generated numbers (the ASan + UBSan build would catch any rapidjson
// conversion still reached). And a status with a NUL.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include <rapidjson/document.h>

#include "http/message.h"
#include "places/json_reader.h"
#include "places/legacy_api.h"
#include "places/new_api.h"
#include "places/upstream_api.h"

using places::read_json;

namespace {

// The one number in `body` ("[<number>]"), or a failed check.
double only_number(const std::string& body) {
  rapidjson::Document doc;
  const rapidjson::ParseResult r = read_json(body, &doc);
  INFO(body);
  REQUIRE(!r.IsError());
  REQUIRE((doc.IsArray() && doc.Size() == 1 && doc[0].IsNumber()));
  return doc[0].GetDouble();
}

bool same_double(double a, double b) { return a == b && std::signbit(a) == std::signbit(b); }

}  // namespace

TEST_SUITE("places upstream json") {
  TEST_CASE("what the fuzzer and the generated numbers found reads as the numbers they are") {
    const std::string z25(25, '0');
    CHECK(same_double(only_number("[0e77]"), 0.0));
    CHECK(same_double(only_number("[-0.0E-999]"), -0.0));
    CHECK(same_double(only_number("[0." + z25 + "]"), 0.0));
    CHECK(same_double(only_number("[-0." + z25 + "e-300]"), -0.0));
    CHECK(same_double(only_number("[0." + std::string(330, '0') + "5e-30]"), 0.0));  // 5e-361: below a double
    CHECK(same_double(only_number("[0." + std::string(400, '0') + "1]"), 0.0));
    const std::string tiny = "0." + std::string(300, '0') + "5";  // 5e-301
    CHECK(same_double(only_number("[" + tiny + "]"), std::strtod(tiny.c_str(), nullptr)));
    CHECK(same_double(only_number("[4e-320]"), std::strtod("4e-320", nullptr)));  // subnormal
    // Still not JSON, and no harm done in finding out.
    rapidjson::Document doc;
    CHECK(read_json("0e0e0067", &doc).IsError());
    CHECK(read_json("0." + z25 + "F..", &doc).IsError());
    CHECK(doc.IsNull());
  }

  TEST_CASE("every generated number is strtod's, or refused as too big for a double") {
    const char* signs[] = {"", "-"};
    const char* ints[] = {"0", "00", "5", "10"};
    std::vector<std::string> fractions = {"", ".", ".0", ".00", ".05", ".50"};
    for (int zeros : {21, 22, 23, 30, 330, 800}) fractions.push_back("." + std::string(zeros, '0'));
    fractions.push_back("." + std::string(400, '0') + "1");
    const char* exponents[] = {"", "e", "e0", "E0", "e5", "e+5", "e-5", "e22", "e-22", "e23", "e-23",
                               "e37", "e38", "E-308", "e-309", "e308", "e400", "e-400", "e99999999999"};
    const char* tails[] = {"", " ", "]", "e0067", "e77", ".5", "0", "e-", "5e-30"};
    int checked = 0;
    int read = 0;
    for (const char* sign : signs) {
      for (const char* in : ints) {
        for (const std::string& frac : fractions) {
          for (const char* ex : exponents) {
            for (const char* tail : tails) {
              // Between the brackets: the number and what may run on from it.
              const std::string inner = std::string(sign) + in + frac + ex + tail;
              const std::string body = "[" + inner + "]";
              INFO(body);
              rapidjson::Document doc;
              const rapidjson::ParseResult r = read_json(body, &doc);
              ++checked;
              char* end = nullptr;
              const double want = std::strtod(inner.c_str(), &end);
              const bool one_number = *end == '\0' || std::string_view(end) == " ";
              const bool json_number = std::string_view(in) != "00" && frac != "." && std::string_view(ex) != "e";
              if (r.IsError()) {
                CHECK(doc.IsNull());
                if (one_number && json_number && std::string_view(tail).find_first_not_of(' ') == std::string_view::npos) {
                  // A number JSON allows is refused only past a double's range (rapidjson's bound
                  // on the exponent refuses "0e400" too).
                  CHECK(r.Code() == rapidjson::kParseErrorNumberTooBig);
                  const std::string_view e(ex);
                  CHECK((std::isinf(want) || e == "e400" || e == "e99999999999"));
                }
                continue;
              }
              ++read;
              REQUIRE((doc.IsArray() && doc.Size() == 1 && doc[0].IsNumber()));
              CHECK(one_number);
              if (doc[0].IsDouble()) {
                CHECK(same_double(doc[0].GetDouble(), want));
              } else {
                CHECK(doc[0].GetDouble() == want);  // "-0" is the integer 0, as rapidjson reads it
              }
            }
          }
        }
      }
    }
    CHECK(checked == 2 * 4 * 13 * 19 * 9);
    CHECK(read > 1000);
  }

  TEST_CASE("integers take the type rapidjson gives them") {
    const char* texts[] = {"0", "-0", "1", "-1", "2147483647", "2147483648", "-2147483648", "-2147483649",
                           "4294967295", "4294967296", "9223372036854775807", "9223372036854775808",
                           "-9223372036854775808", "-9223372036854775809", "18446744073709551615",
                           "18446744073709551616", "123456789012345678901234567890"};
    for (const char* text : texts) {
      const std::string body = std::string("[") + text + "]";
      INFO(body);
      rapidjson::Document ours;
      REQUIRE(!read_json(body, &ours).IsError());
      // rapidjson's own reading of an integer converts no decimal text, save past 64 bits (then
      // by multiplying by ten digit by digit, at exponent 0), so it is safe to compare with.
      rapidjson::Document theirs;
      theirs.Parse(body.data(), body.size());
      REQUIRE(!theirs.HasParseError());
      const rapidjson::Value& a = ours[0];
      const rapidjson::Value& b = theirs[0];
      CHECK(a.IsInt() == b.IsInt());
      CHECK(a.IsUint() == b.IsUint());
      CHECK(a.IsInt64() == b.IsInt64());
      CHECK(a.IsUint64() == b.IsUint64());
      CHECK(a.IsDouble() == b.IsDouble());
      if (a.IsDouble()) {
        CHECK(a.GetDouble() == std::strtod(text, nullptr));  // correctly rounded, where rapidjson's is not
      } else {
        CHECK(a == b);
      }
    }
  }

  TEST_CASE("a number past a double's range is refused, one just inside it is read") {
    rapidjson::Document doc;
    CHECK(read_json("[1.8e308]", &doc).Code() == rapidjson::kParseErrorNumberTooBig);  // ours: strtod says inf
    CHECK(read_json("[-1e309]", &doc).Code() == rapidjson::kParseErrorNumberTooBig);   // rapidjson's bound
    CHECK(same_double(only_number("[1.7e308]"), 1.7e308));
    CHECK(same_double(only_number("[-33.8670522]"), -33.8670522));
  }

  TEST_CASE("both APIs read zeros however they are written, and refuse what is not JSON") {
    http::Response r;
    r.status = 200;
    r.body = R"({"status": "OK", "results": [{"name": "Z", "geometry": {"location": {"lat": 0e77, "lng": -0.0E-999}}}]})";
    places::PlacesAnswer legacy = places::LegacyApi("k").interpret(r);
    CHECK(legacy.status == "OK");
    const auto& loc = (*legacy.doc)["results"][0]["geometry"]["location"];
    CHECK(same_double(loc["lat"].GetDouble(), 0.0));
    CHECK(same_double(loc["lng"].GetDouble(), -0.0));
    r.body = R"({"status": "OK", "results": [{"name": "Z", "geometry": {"location": {"lat": 0.)" +
             std::string(40, '0') + R"(, "lng": -0.)" + std::string(300, '0') + R"(}}}]})";
    legacy = places::LegacyApi("k").interpret(r);
    CHECK(legacy.status == "OK");
    const auto& loc2 = (*legacy.doc)["results"][0]["geometry"]["location"];
    CHECK(same_double(loc2["lat"].GetDouble(), 0.0));
    CHECK(same_double(loc2["lng"].GetDouble(), -0.0));
    r.body = R"({"places": [{"id": "z", "displayName": {"text": "Z"}, "location": {"latitude": 0.0e-500, "longitude": 0e0}}]})";
    places::PlacesAnswer fresh = places::NewApi("k").interpret(r);
    CHECK(fresh.status == "OK");
    r.body = R"({"status": "OK", "results": [{"name": "Z", "geometry": {"location": {"lat": 0e0e0067}}}]})";
    legacy = places::LegacyApi("k").interpret(r);
    CHECK(legacy.status != "OK");
    CHECK(legacy.doc->IsObject());
  }

  TEST_CASE("a status with a NUL in it is kept whole (found by fuzz_upstream_json)") {
    http::Response r;
    r.status = 200;
    r.body = R"({"status": "\u0000QUEER", "results": []})";
    places::PlacesAnswer a = places::LegacyApi("k").interpret(r);
    CHECK(a.status == std::string("\0QUEER", 6));
  }
}
