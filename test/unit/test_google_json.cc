// Unit tests for places/google_json: Google's legacy byte layout, rule by rule, and a byte-exact
// re-rendering of Google's own example response.
#include <doctest/doctest.h>

#include <cstdint>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>

#include <rapidjson/document.h>

#include "places/google_json.h"
#include "places/json_reader.h"

namespace {

// Parses `json` (which must be valid) as the server parses an upstream's answer, and renders it again.
std::string rerender(const std::string& json) {
  rapidjson::Document doc;
  REQUIRE_FALSE(places::read_json(json, &doc).IsError());
  return places::google_json(doc);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE_MESSAGE(in.good(), "cannot open " << path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string string_json(std::string_view s) {
  std::string out;
  places::append_google_string(out, s);
  return out;
}

std::string double_json(double d) {
  std::string out;
  places::append_google_double(out, d);
  return out;
}

}  // namespace

TEST_SUITE("google_json") {

TEST_CASE("Google's example response re-renders byte for byte") {
  std::string file = read_file("test/fixtures/google-nearbysearch-example.json");
  REQUIRE(file.size() > 1000);
  REQUIRE(file.back() == '\n');
  std::string expected = file.substr(0, file.size() - 1);
  CHECK(rerender(file) == expected);
}

TEST_CASE("scalars at the top level") {
  CHECK(rerender("null") == "null");
  CHECK(rerender("true") == "true");
  CHECK(rerender("false") == "false");
  CHECK(rerender("\"x\"") == "\"x\"");
  CHECK(rerender("17") == "17");
}

TEST_CASE("empty array and empty object") {
  CHECK(rerender("[]") == "[]");
  CHECK(rerender("{}") == "{}");
  CHECK(rerender(R"({"a":[],"b":{}})") == "{\n   \"a\" : [],\n   \"b\" : {}\n}");
}

TEST_CASE("objects: 3-space indent, key : value, brace on the key's line") {
  CHECK(rerender(R"({"a":1,"b":{"c":"d","e":{"f":null}}})") ==
        "{\n"
        "   \"a\" : 1,\n"
        "   \"b\" : {\n"
        "      \"c\" : \"d\",\n"
        "      \"e\" : {\n"
        "         \"f\" : null\n"
        "      }\n"
        "   }\n"
        "}");
}

TEST_CASE("members are sorted by key bytes") {
  // Uppercase before lowercase, prefixes first, non-ASCII (bytes >= 0x80) last.
  CHECK(rerender("{\"b\":1,\"\xc3\xa9\":2,\"aa\":3,\"a\":4,\"B\":5}") ==
        "{\n   \"B\" : 5,\n   \"a\" : 4,\n   \"aa\" : 3,\n   \"b\" : 1,\n   \"\xc3\xa9\" : 2\n}");
  // Keys are escaped like strings.
  CHECK(rerender(R"({"<k>":true})") == "{\n   \"\\u003ck\\u003e\" : true\n}");
}

TEST_CASE("one-line array: line length threshold at 74") {
  // "[ " + quoted string + " ]": a 67-byte string gives a 73-byte line, a 68-byte one 74.
  std::string s67(67, 'x'), s68(68, 'x');
  CHECK(rerender("[\"" + s67 + "\"]") == "[ \"" + s67 + "\" ]");
  CHECK(rerender("[\"" + s68 + "\"]") == "[\n   \"" + s68 + "\"\n]");
  // Separators count: 3 strings of 20 bytes: 4 + 2×2 + 3×22 = 74 → multi-line; 19 bytes → 71.
  std::string a20(20, 'a'), a19(19, 'a');
  CHECK(rerender("[\"" + a19 + "\",\"" + a19 + "\",\"" + a19 + "\"]") ==
        "[ \"" + a19 + "\", \"" + a19 + "\", \"" + a19 + "\" ]");
  CHECK(rerender("[\"" + a20 + "\",\"" + a20 + "\",\"" + a20 + "\"]") ==
        "[\n   \"" + a20 + "\",\n   \"" + a20 + "\",\n   \"" + a20 + "\"\n]");
  // Escapes count at their rendered length: "<" is 6 bytes once escaped.
  std::string lt12 = "<<<<<<<<<<<<";  // 72 rendered bytes + quotes = 74 → too long
  CHECK(rerender("[\"" + lt12 + "\"]").find('\n') != std::string::npos);
}

TEST_CASE("one-line array: element count threshold") {
  // 23 one-digit numbers: 23 × 3 = 69 < 74 and 4 + 2 × 22 + 23 = 71 < 74 → one line.
  std::string in = "[", one = "[ ";
  for (int i = 0; i < 23; ++i) {
    in += (i ? ",7" : "7");
    one += (i ? ", 7" : "7");
  }
  CHECK(rerender(in + "]") == one + " ]");
  // 25 elements: 25 × 3 = 75 ≥ 74 → one per line.
  std::string in25 = "[", multi = "[";
  for (int i = 0; i < 25; ++i) {
    in25 += (i ? ",7" : "7");
    multi += (i ? ",\n   7" : "\n   7");
  }
  CHECK(rerender(in25 + "]") == multi + "\n]");
  // 24 elements: 24 × 3 = 72 < 74, but the line is 4 + 46 + 24 = 74 long → one per line.
  CHECK(rerender("[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]").find('\n') !=
        std::string::npos);
}

TEST_CASE("one-line array: containers inside") {
  // Empty containers keep the array on one line.
  CHECK(rerender(R"([[],{},1])") == "[ [], {}, 1 ]");
  // A non-empty container forces one element per line; the inner array may be one line itself.
  CHECK(rerender(R"([[1],2])") == "[\n   [ 1 ],\n   2\n]");
  CHECK(rerender(R"([{"a":1}])") == "[\n   {\n      \"a\" : 1\n   }\n]");
  // Arrays of objects nested in objects, as in Places results.
  CHECK(rerender(R"({"r":[{"x":[1,2]},{}]})") ==
        "{\n"
        "   \"r\" : [\n"
        "      {\n"
        "         \"x\" : [ 1, 2 ]\n"
        "      },\n"
        "      {}\n"
        "   ]\n"
        "}");
}

TEST_CASE("string escapes") {
  CHECK(string_json("a\"b\\c") == R"("a\"b\\c")");
  CHECK(string_json("\b\f\n\r\t") == R"("\b\f\n\r\t")");
  CHECK(string_json(std::string("\x01\x1f\x0b", 3)) == R"("\u0001\u001f\u000b")");
  CHECK(string_json(std::string("a\0b", 3)) == R"("a\u0000b")");
  CHECK(string_json("<b>") == R"("\u003cb\u003e")");
  CHECK(string_json("&/") == R"("&/")");
  CHECK(string_json("\x7f") == "\"\x7f\"");                       // DEL stays raw
  CHECK(string_json("S\xc3\xa3o Paulo") == "\"S\xc3\xa3o Paulo\"");  // UTF-8 raw
  CHECK(string_json("\xff\xfe") == "\"\xff\xfe\"");                // invalid UTF-8 raw too
  CHECK(string_json("") == "\"\"");
}

TEST_CASE("numbers") {
  CHECK(rerender("4") == "4");
  CHECK(rerender("-12") == "-12");
  CHECK(rerender("4.0") == "4");  // integral doubles drop ".0"
  CHECK(rerender("-0.5") == "-0.5");
  CHECK(rerender("0.1") == "0.1");
  CHECK(rerender("1e20") == "1e+20");
  CHECK(rerender("1.5e-7") == "1.5e-07");
  CHECK(rerender("-33.85739847010727") == "-33.85739847010727");
  CHECK(rerender("151.2112436298927") == "151.2112436298927");
  CHECK(rerender("18446744073709551615") == "18446744073709551615");
  CHECK(rerender("-9223372036854775808") == "-9223372036854775808");
  CHECK(double_json(1.0 / 3.0) == "0.3333333333333333");  // 16 significant digits
  CHECK(double_json(35.08449 + 0.0013489802915) == "35.08583898029151");
  CHECK(double_json(1e15) == "1000000000000000");
  CHECK(double_json(1e16) == "1e+16");
  CHECK(double_json(std::numeric_limits<double>::quiet_NaN()) == "null");
  CHECK(double_json(std::numeric_limits<double>::infinity()) == "null");
}

TEST_CASE("values built in memory render like parsed ones") {
  rapidjson::Document doc(rapidjson::kObjectType);
  auto& a = doc.GetAllocator();
  rapidjson::Value arr(rapidjson::kArrayType);
  arr.PushBack(rapidjson::Value(2.5), a).PushBack(rapidjson::Value(int64_t{3}), a);
  doc.AddMember("z", arr, a);
  doc.AddMember("a", rapidjson::Value(10.0), a);
  std::string out = "x";
  places::append_google_json(out, doc);
  CHECK(out == "x{\n   \"a\" : 10,\n   \"z\" : [ 2.5, 3 ]\n}");
  CHECK(places::google_json(doc) == out.substr(1));
}

}  // TEST_SUITE
