// Unit tests for herd-load's header-only parts: the latency histogram and its percentile export,
// herd reply framing and checking, RESP parsing and checking, and option parsing (durations with
// units, HOST:PORT targets with IPv6 literals).
#include <doctest/doctest.h>

#include <cmath>
#include <random>
#include <string>

#include "test/json_reference.h"
#include "test/unit/xorshift.h"
#include "tools/load/arg_parse.h"
#include "tools/load/herd_reply.h"
#include "tools/load/histogram.h"
#include "tools/load/json_check.h"
#include "tools/load/percentile_export.h"
#include "tools/load/resp_reply.h"
#include "tools/load/workload.h"

using namespace herd_load;

TEST_CASE("load histogram: buckets are within 1% and cover 1 us to 60 s") {
  for (uint64_t v : {0ull, 1ull, 255ull, 256ull, 1000ull, 123456ull, 999999999ull, 60000000000ull}) {
    size_t i = Histogram::bucket_index(v);
    CHECK(Histogram::bucket_low(i) <= v);
    CHECK(Histogram::bucket_high(i) >= v);
    if (v >= 1000) CHECK(static_cast<double>(Histogram::bucket_high(i) - Histogram::bucket_low(i)) <= 0.01 * v);
  }
  // Buckets are contiguous.
  for (size_t i = 1; i < Histogram::bucket_index(Histogram::kMaxValue); ++i)
    CHECK(Histogram::bucket_low(i) == Histogram::bucket_high(i - 1) + 1);
}

TEST_CASE("load histogram: percentiles, max, merge, clamp") {
  Histogram h;
  CHECK(h.percentile(50) == 0);
  for (uint64_t us = 1; us <= 1000; ++us) h.record(us * 1000);  // 1 us .. 1 ms
  CHECK(h.count() == 1000);
  CHECK(h.max() == 1000000);
  CHECK(h.min() == 1000);
  auto near = [](uint64_t got, double want) { return got >= want * 0.99 && got <= want * 1.01; };
  CHECK(near(h.percentile(50), 500000));
  CHECK(near(h.percentile(90), 900000));
  CHECK(near(h.percentile(99), 990000));
  CHECK(near(h.percentile(99.9), 999000));
  CHECK(h.percentile(100) == 1000000);
  Histogram other;
  other.record(5000000000ull);  // 5 s
  other.record(100ull * 1000 * 1000 * 1000);  // 100 s: clamped to 60 s
  h.merge(other);
  CHECK(h.count() == 1002);
  CHECK(h.clamped() == 1);
  CHECK(h.max() == Histogram::kMaxValue);
  CHECK(near(h.percentile(99.9), 5e9));
}

TEST_CASE("load reply framing: lines and WHATSAT replies") {
  size_t len = 0;
  CHECK(frame_line("AT x", &len) == Frame::kIncomplete);
  CHECK(frame_line("AT x\nAT y\n", &len) == Frame::kComplete);
  CHECK(len == 5);
  std::string reply = "AT A +0.1 c +1.0+2.0 3\n{\n\"results\": []\n}\n\n";
  CHECK(frame_whatsat(reply.substr(0, reply.size() - 1), &len) == Frame::kIncomplete);
  CHECK(frame_whatsat(reply + "AT next", &len) == Frame::kComplete);
  CHECK(len == reply.size());
  CHECK(frame_whatsat("? WHATSAT c 1 1\nmore", &len) == Frame::kComplete);
  CHECK(len == 16);
  CHECK(frame_whatsat("AT A +0.1 c +1.0+2.0 3\n\nrest", &len) == Frame::kComplete);  // empty body
  CHECK(len == 24);
}

TEST_CASE("load reply framing: the blank-line search agrees with a byte loop at every offset") {
  // Texts of newlines and letters: every "\n\n" position, including across the 16-byte blocks
  // the vector search compares and in the last bytes it leaves to the byte loop.
  XorShift next{0x2545f4914f6cdd1dull};
  for (int k = 0; k < 3000; ++k) {
    const uint64_t rng = next();
    std::string s(rng % 80, 'a');
    for (size_t i = 0; i < s.size(); ++i) {
      if ((rng >> (i % 60)) % 5 == 0) s[i] = '\n';
    }
    const size_t from = s.empty() ? 0 : (rng >> 20) % s.size();
    CHECK_MESSAGE(find_blank_line(s, from) == s.find("\n\n", from), s.size(), " from ", from);
  }
  CHECK(find_blank_line("", 0) == std::string_view::npos);
  CHECK(find_blank_line("\n", 0) == std::string_view::npos);
  CHECK(find_blank_line(std::string(40, 'x') + "\n\n", 0) == 40);
}

TEST_CASE("load reply framing: a WHATSAT reply that comes in pieces is framed the same") {
  // The search resumes where the last incomplete one stopped; a piece may end between the two
  // newlines of the terminator.
  std::string reply = "AT A +0.1 c +1.0+2.0 3\n{\n";
  while (reply.size() < 3000) reply += "   \"lat\" : 34.07,\n";
  reply += "\"status\" : \"OK\"\n}\n\n";
  const std::string next = "AT B +0.2 d +1.0+2.0 4\n{}\n\n";
  for (size_t piece : {1, 7, 16, 17, 100, 1500}) {
    const std::string stream = reply + next;
    size_t scanned = 0, len = 0, have = 0;
    Frame f = Frame::kIncomplete;
    while (f == Frame::kIncomplete) {
      have = std::min(stream.size(), have + piece);
      f = frame_whatsat(std::string_view(stream).substr(0, have), &len, &scanned);
    }
    REQUIRE(f == Frame::kComplete);
    CHECK_MESSAGE(len == reply.size(), piece);
    CHECK(have >= reply.size());
  }
}

TEST_CASE("load reply check: IAMAT") {
  bool stale = false;
  const char* id = "kiwi.cs.ucla.edu";
  const char* loc = "+34.068930-118.445127";
  const char* t = "1520023934.918963997";
  std::string good = std::string("AT Goloman +0.263873386 ") + id + " " + loc + " " + t + "\n";
  CHECK(check_iamat_reply(good, id, loc, t, "", &stale) == ErrorKind::kNone);
  CHECK(!stale);
  CHECK(check_iamat_reply(good, id, loc, t, "Goloman", &stale) == ErrorKind::kNone);
  CHECK(check_iamat_reply(good, id, loc, t, "Hands", &stale) == ErrorKind::kWrongServer);
  CHECK(check_iamat_reply("AT Goloman -0.000000001 kiwi.cs.ucla.edu +34.068930-118.445127 1520023934.918963997",
                          id, loc, t, "", &stale) == ErrorKind::kNone);
  CHECK(check_iamat_reply("? IAMAT kiwi.cs.ucla.edu x y\n", id, loc, t, "", &stale) == ErrorKind::kInvalid);
  // Shape errors: 8 fraction digits, "+-", exponent, doubled space, trailing field, tab.
  for (const char* bad : {"AT Goloman +0.26387338 kiwi.cs.ucla.edu +34.068930-118.445127 1520023934.918963997",
                          "AT Goloman +-0.263873386 kiwi.cs.ucla.edu +34.068930-118.445127 1520023934.918963997",
                          "AT Goloman +2.6e-01 kiwi.cs.ucla.edu +34.068930-118.445127 1520023934.918963997",
                          "AT Goloman  +0.263873386 kiwi.cs.ucla.edu +34.068930-118.445127 1520023934.918963997",
                          "AT Goloman +0.263873386 kiwi.cs.ucla.edu +34.068930-118.445127 1520023934.918963997 x",
                          "AT Goloman\t+0.263873386 kiwi.cs.ucla.edu +34.068930-118.445127 1520023934.918963997",
                          "AT Goloman +0.263873386 kiwi.cs.ucla.edu +34.068930-118.445127",
                          "Goloman +0.263873386 kiwi.cs.ucla.edu +34.068930-118.445127 1520023934.918963997"})
    CHECK_MESSAGE(check_iamat_reply(bad, id, loc, t, "", &stale) == ErrorKind::kMalformed, bad);
  // Another client's line, or our client with an older or different record: mismatch.
  CHECK(check_iamat_reply("AT Goloman +0.263873386 other +34.068930-118.445127 1520023934.918963997", id, loc,
                          t, "", &stale) == ErrorKind::kMismatch);
  CHECK(check_iamat_reply("AT Goloman +0.263873386 kiwi.cs.ucla.edu +34.068930-118.445127 1520023934.918963996",
                          id, loc, t, "", &stale) == ErrorKind::kMismatch);
  CHECK(check_iamat_reply("AT Goloman +0.263873386 kiwi.cs.ucla.edu +1.0+1.0 1520023934.918963997", id, loc, t, "",
                          &stale) == ErrorKind::kMismatch);
  // A newer stored record for the same client is a valid answer, from any server.
  CHECK(check_iamat_reply("AT Hands +0.263873386 kiwi.cs.ucla.edu +1.0+1.0 1520023934.92", id, loc, t, "Goloman",
                          &stale) == ErrorKind::kNone);
  CHECK(stale);
}

TEST_CASE("load reply check: client time comparison is exact") {
  CHECK(compare_client_times("1520023934.918963997", "1520023934.918963996") > 0);
  CHECK(compare_client_times("1520023934.9", "1520023934.900000000") == 0);
  CHECK(compare_client_times("0001.5", "1.4") > 0);
  CHECK(compare_client_times("9", "10") < 0);
  CHECK(compare_client_times("10", "9.999999999") > 0);
}

TEST_CASE("load reply check: a WHATSAT body already judged good is remembered, nothing else") {
  const std::string at = "AT Goloman +0.263873386 kiwi +34.068930-118.445127 1520023934.918963997\n";
  // (Large enough to be remembered: the indentation of a long reply.)
  const std::string body = "{\n" + std::string(WhatsatMemo::kMinBytes, ' ') +
                           "\"results\": [{\"name\": \"a\"}, {\"name\": \"b\"}],\n  \"status\": \"OK\"\n}\n\n";
  WhatsatMemo memo;
  WhatsatMemo::Slot* slot = memo.slot(7);
  CHECK(memo.slot(7 + WhatsatMemo::kSlots) == slot);
  WhatsatInfo info;
  REQUIRE(check_whatsat_reply(at + body, "kiwi", 2, &info, slot) == ErrorKind::kNone);
  CHECK_FALSE(info.remembered);
  CHECK(slot->body == body);
  // The same body again (another AT line: the record moved on, the places did not): remembered,
  // with what the parse found.
  info = {};
  const std::string at2 = "AT Hands +0.000000001 kiwi +34.068930-118.445127 1520023935.5\n";
  REQUIRE(check_whatsat_reply(at2 + body, "kiwi", 2, &info, slot) == ErrorKind::kNone);
  CHECK(info.remembered);
  CHECK(info.results == 2);
  CHECK(info.status_ok);
  CHECK(info.status == "OK");
  // The AT line is still checked on every reply.
  info = {};
  CHECK(check_whatsat_reply(at + body, "other", 2, &info, slot) == ErrorKind::kMismatch);
  info = {};
  CHECK(check_whatsat_reply("AT Goloman kiwi\n" + body, "kiwi", 2, &info, slot) == ErrorKind::kMalformed);
  // A smaller bound: judged again, and two results are too many.
  info = {};
  CHECK(check_whatsat_reply(at + body, "kiwi", 1, &info, slot) == ErrorKind::kBadResults);
  CHECK_FALSE(info.remembered);
  // Any byte changed is judged again, as without a memo: broken JSON and a bad frame are caught
  // right after the good body was remembered.
  size_t caught = 0;
  for (size_t i = 0; i < body.size(); ++i) {
    info = {};
    REQUIRE(check_whatsat_reply(at + body, "kiwi", 2, &info, slot) == ErrorKind::kNone);
    std::string changed = body;
    changed[i] = changed[i] == '[' ? '{' : '[';
    info = {};
    const ErrorKind got = check_whatsat_reply(at + changed, "kiwi", 2, &info, slot);
    CHECK_FALSE(info.remembered);
    WhatsatInfo fresh;
    CHECK_MESSAGE(got == check_whatsat_reply(at + changed, "kiwi", 2, &fresh), i);
    CHECK(info.results == fresh.results);
    if (got != ErrorKind::kNone) ++caught;
  }
  CHECK(caught > body.size() / 2);  // (a change inside a name is still good JSON)
  // A slot holds the last good body: after a different good one, the first is judged again.
  const std::string other = "{\"results\":[]," + std::string(WhatsatMemo::kMinBytes, ' ') + "\"status\":\"ZERO_RESULTS\"}\n\n";
  info = {};
  REQUIRE(check_whatsat_reply(at + other, "kiwi", 2, &info, slot) == ErrorKind::kNone);
  CHECK_FALSE(info.remembered);
  info = {};
  REQUIRE(check_whatsat_reply(at + body, "kiwi", 2, &info, slot) == ErrorKind::kNone);
  CHECK_FALSE(info.remembered);
  // A small body is not remembered (it is parsed every time).
  const std::string small = "{\"results\":[],\"status\":\"OK\"}\n\n";
  for (int i = 0; i < 2; ++i) {
    info = {};
    REQUIRE(check_whatsat_reply(at + small, "kiwi", 2, &info, slot) == ErrorKind::kNone);
    CHECK_FALSE(info.remembered);
  }
}

TEST_CASE("load reply check: WHATSAT") {
  const std::string at = "AT Goloman +0.263873386 kiwi +34.068930-118.445127 1520023934.918963997\n";
  WhatsatInfo info;
  std::string good = at + "{\n  \"results\": [{\"name\": \"a\"}, {\"name\": \"b\"}],\n  \"status\": \"OK\"\n}\n\n";
  CHECK(check_whatsat_reply(good, "kiwi", 2, &info) == ErrorKind::kNone);
  CHECK(info.results == 2);
  CHECK(info.status_ok);
  info = {};
  CHECK(check_whatsat_reply(good, "kiwi", 1, &info) == ErrorKind::kBadResults);
  info = {};
  CHECK(check_whatsat_reply(good, "other", 5, &info) == ErrorKind::kMismatch);
  std::string denied = at + "{\"results\":[],\"status\":\"REQUEST_DENIED\",\"error_message\":\"no key\"}\n\n";
  info = {};
  CHECK(check_whatsat_reply(denied, "kiwi", 5, &info) == ErrorKind::kNone);
  CHECK(!info.status_ok);
  CHECK(info.status == "REQUEST_DENIED");
  info = {};
  CHECK(check_whatsat_reply("? WHATSAT kiwi 10 5\n", "kiwi", 5, &info) == ErrorKind::kInvalid);
  info = {};
  CHECK(check_whatsat_reply(at + "{\"results\":[],\"status\":\"OK\"}\n\n\n", "kiwi", 5, &info) ==
        ErrorKind::kMalformed);
  info = {};
  CHECK(check_whatsat_reply(at + "{\"results\":[],\"status\":\"OK\"}\n", "kiwi", 5, &info) == ErrorKind::kMalformed);
  info = {};
  CHECK(check_whatsat_reply(at + "\n{\"results\":[],\"status\":\"OK\"}\n\n", "kiwi", 5, &info) ==
        ErrorKind::kMalformed);
  info = {};
  CHECK(check_whatsat_reply(at + "{\"results\":[],\"status\":\"OK\",}\n\n", "kiwi", 5, &info) == ErrorKind::kBadJson);
  info = {};
  CHECK(check_whatsat_reply(at + "{\"results\":{},\"status\":\"OK\"}\n\n", "kiwi", 5, &info) ==
        ErrorKind::kBadResults);
  info = {};
  CHECK(check_whatsat_reply(at + "{\"results\":[]}\n\n", "kiwi", 5, &info) == ErrorKind::kBadResults);
  info = {};
  CHECK(check_whatsat_reply("AT bad\n{\"results\":[],\"status\":\"OK\"}\n\n", "kiwi", 5, &info) ==
        ErrorKind::kMalformed);
}

TEST_CASE("load reply check: WHATSAT JSON shape (results counted at their own depth only)") {
  const std::string at = "AT Goloman +0.263873386 kiwi +34.068930-118.445127 1520023934.918963997\n";
  auto check = [&](const std::string& json, size_t bound, WhatsatInfo* info) {
    return check_whatsat_reply(at + json + "\n\n", "kiwi", bound, info);
  };
  WhatsatInfo info;
  // Nested objects and arrays inside a result, and elements of any type, count once each.
  CHECK(check("{\"results\": [{\"a\": [1, {\"b\": [2, 3]}], \"c\": {}}, 7, \"s\", null, [[]]],"
              " \"status\": \"OK\"}", 5, &info) == ErrorKind::kNone);
  CHECK(info.results == 5);
  CHECK(info.status == "OK");
  // Members named results or status below the top level are not the reply's.
  info = {};
  CHECK(check("{\"x\": {\"results\": [1, 2, 3], \"status\": 4}, \"results\": [{}], \"status\": \"ZERO_RESULTS\"}",
              1, &info) == ErrorKind::kNone);
  CHECK(info.results == 1);
  CHECK(info.status_ok);
  // The first of a repeated member is the one read (as a DOM's FindMember would).
  info = {};
  CHECK(check("{\"results\": [], \"results\": [1, 2], \"status\": \"OK\", \"status\": 3}", 1, &info) ==
        ErrorKind::kNone);
  CHECK(info.results == 0);
  info = {};
  CHECK(check("{\"status\": \"OK\", \"results\": \"none\"}", 5, &info) == ErrorKind::kBadResults);
  info = {};
  CHECK(check("{\"results\": [], \"status\": [\"OK\"]}", 5, &info) == ErrorKind::kBadResults);
  info = {};
  CHECK(check("[{\"results\": [], \"status\": \"OK\"}]", 5, &info) == ErrorKind::kMalformed);  // not "}\n\n"
  info = {};
  CHECK(check("{\"results\": [1.5e3, -0.25], \"status\": \"OK\"}", 5, &info) == ErrorKind::kNone);
  CHECK(info.results == 2);
  // Numbers are kept as text, but their syntax is still checked; so are escapes and trailing bytes.
  info = {};
  CHECK(check("{\"results\": [01], \"status\": \"OK\"}", 5, &info) == ErrorKind::kBadJson);
  info = {};
  CHECK(check("{\"results\": [\"\\q\"], \"status\": \"OK\"}", 5, &info) == ErrorKind::kBadJson);
  info = {};
  CHECK(check("{\"results\": [], \"status\": \"OK\"} {}", 5, &info) == ErrorKind::kBadJson);
  // An escaped status is unescaped.
  info = {};
  CHECK(check("{\"results\": [], \"status\": \"O\\u004b\"}", 5, &info) == ErrorKind::kNone);
  CHECK(info.status == "OK");
}

namespace {

// A random JSON value, `depth` deep at most, in a random layout: the inputs of the comparison below.
std::string random_json(std::mt19937& rng, int depth) {
  auto ws = [&] {
    static const char* kWs[] = {"", "", " ", "\n   ", "\t", "\r\n"};
    return std::string(kWs[rng() % 6]);
  };
  auto str = [&] {
    static const char* kPieces[] = {"a", "results", "status", "OK", " ", "\\n", "\\\"", "\\\\", "\\/", "\\u0041",
                                    "\\ud83d\\ude00", "\\udc00", "\xc3\xa9", "\x80", "\\b\\f\\r\\t", "lat"};
    std::string t = "\"";
    for (unsigned k = rng() % 4; k > 0; --k) t += kPieces[rng() % 16];
    return t + "\"";
  };
  switch (depth <= 0 ? rng() % 4 : rng() % 7) {
    case 0: return str();
    case 1: {
      std::string n = rng() % 2 ? "-" : "";
      n += rng() % 4 == 0 ? "0" : std::to_string(rng() % 100000000);
      if (rng() % 2) n += "." + std::to_string(rng() % 1000000);
      if (rng() % 3 == 0) n += std::string(rng() % 2 ? "e" : "E") + (rng() % 2 ? "-" : "+") + std::to_string(rng() % 99);
      return n;
    }
    case 2: return rng() % 2 ? "true" : "false";
    case 3: return "null";
    case 4: case 5: {
      std::string o = "{" + ws();
      for (unsigned k = rng() % 4; k > 0; --k) {
        o += (rng() % 3 ? str() : std::string(rng() % 2 ? "\"results\"" : "\"status\"")) + ws() + ":" + ws() + random_json(rng, depth - 1) + ws();
        if (k > 1) o += "," + ws();
      }
      return o + "}";
    }
    default: {
      std::string a = "[" + ws();
      for (unsigned k = rng() % 4; k > 0; --k) {
        a += random_json(rng, depth - 1) + ws();
        if (k > 1) a += "," + ws();
      }
      return a + "]";
    }
  }
}

}  // namespace

TEST_CASE("load JSON check: the same verdict and shape as RapidJSON on random and mutated JSON") {
  std::mt19937 rng(77);
  const std::string alphabet = "{}[],:\"\\ \n0123456789eE.+-tfnul\x01\x1f\x7f\x80xu";
  size_t valid = 0, invalid = 0;
  for (int trial = 0; trial < 60000; ++trial) {
    std::string text = random_json(rng, 4);
    if (trial % 3 == 0) {
      text = "{\"results\": " + random_json(rng, 3) + ", \"status\": " + random_json(rng, 1) + "}";
    }
    // Two thirds mutated: a byte replaced, inserted or removed, or the text cut short.
    for (unsigned k = trial % 3 ? 1 + rng() % 2 : 0; k > 0 && !text.empty(); --k) {
      const size_t at = rng() % text.size();
      switch (rng() % 4) {
        case 0: text[at] = alphabet[rng() % alphabet.size()]; break;
        case 1: text.insert(text.begin() + static_cast<std::ptrdiff_t>(at), alphabet[rng() % alphabet.size()]); break;
        case 2: text.erase(at, 1); break;
        default: text.resize(at); break;
      }
    }
    JsonShape want;
    if (!json_reference::rapidjson_shape(text, &want)) continue;  // a number past a double's range
    JsonShape shape;
    check_json_shape(text, &shape);
    CAPTURE(text);
    REQUIRE(shape.valid == want.valid);
    ++(shape.valid ? valid : invalid);
    CHECK(json_reference::same_shape(shape, want));
  }
  CHECK(valid > 10000);
  CHECK(invalid > 10000);
}

TEST_CASE("load JSON check: what it refuses beyond RapidJSON's reading") {
  JsonShape shape;
  // Bytes after a NUL past the value (RapidJSON stops at a NUL as at the end of a C string).
  CHECK_FALSE(check_json_shape(std::string_view("{}\0}", 4), &shape));
  // A byte order mark, or any of its bytes (RapidJSON, reading with a length, skips each).
  CHECK_FALSE(check_json_shape("\xEF\xBB\xBF{}", &shape));
  CHECK_FALSE(check_json_shape("\xBB" "2", &shape));
  // Nesting deeper than kMaxJsonDepth.
  std::string deep(kMaxJsonDepth + 1, '[');
  deep += std::string(kMaxJsonDepth + 1, ']');
  CHECK_FALSE(check_json_shape(deep, &shape));
  deep = std::string(kMaxJsonDepth, '[') + std::string(kMaxJsonDepth, ']');
  CHECK(check_json_shape(deep, &shape));
  // Huge numbers are grammar, not errors.
  CHECK(check_json_shape("{\"results\": [1e999, 123456789012345678901234567890], \"status\": \"OK\"}", &shape));
  CHECK(shape.result_count == 2);
}

TEST_CASE("load workload: every GEOADD of a client moves it, so every one is a write Redis replicates") {
  // A GEOADD that leaves a member's score as it was changes nothing and is not propagated to
  // replicas; the herd stores and floods every IAMAT (each has a newer timestamp).
  Options o;
  o.protocol = Protocol::kRedis;
  o.clients = 3;
  Workload w(o);
  std::vector<std::string> sent;
  for (int i = 0; i < 4; ++i) {
    std::string out;
    w.append_iamat(&out, 1, w.next_timestamp(1));
    sent.push_back(out);
  }
  CHECK(sent[0].rfind("GEOADD herd ", 0) == 0);
  CHECK(sent[0].find(" c1.load\r\n") != std::string::npos);
  CHECK(sent[0] != sent[1]);
  CHECK(sent[0] == sent[2]);
  CHECK(sent[1] == sent[3]);
  // The two longitudes are 0.0001 degree apart (about 10 m: more than a geohash score's step).
  auto lng = [](const std::string& cmd) { return std::stod(cmd.substr(std::string("GEOADD herd ").size())); };
  CHECK(std::abs(std::abs(lng(sent[0]) - lng(sent[1])) - 0.0001) < 1e-9);
  // The herd's IAMATs keep the location: the new timestamp is what makes each one a new record.
  Options h;
  h.clients = 3;
  Workload hw(h);
  std::string a, b;
  hw.append_iamat(&a, 1, hw.next_timestamp(1));
  hw.append_iamat(&b, 1, hw.next_timestamp(1));
  CHECK(a.substr(0, a.rfind(' ')) == b.substr(0, b.rfind(' ')));
  CHECK(a != b);
}

TEST_CASE("load RESP: parsing and GEOADD/GEOSEARCH checks") {
  RespValue v;
  size_t pos = 0;
  CHECK(parse_resp(":1\r\n", &pos, &v) == RespParse::kComplete);
  CHECK(pos == 4);
  CHECK(check_geoadd_reply(v) == ErrorKind::kNone);
  pos = 0;
  CHECK(parse_resp(":2\r\n", &pos, &v) == RespParse::kComplete);
  CHECK(check_geoadd_reply(v) == ErrorKind::kMismatch);
  pos = 0;
  CHECK(parse_resp("-ERR wrong\r\n", &pos, &v) == RespParse::kComplete);
  CHECK(check_geoadd_reply(v) == ErrorKind::kRedisError);
  pos = 0;
  CHECK(parse_resp(":1", &pos, &v) == RespParse::kIncomplete);
  std::string arr = "*2\r\n$4\r\nc1.x\r\n$6\r\nc22.xy\r\n";
  for (size_t cut = 0; cut < arr.size(); ++cut) {
    pos = 0;
    CHECK(parse_resp(arr.substr(0, cut), &pos, &v) == RespParse::kIncomplete);
  }
  pos = 0;
  CHECK(parse_resp(arr + ":0\r\n", &pos, &v) == RespParse::kComplete);
  CHECK(pos == arr.size());
  size_t results = 0;
  CHECK(check_geosearch_reply(v, 5, &results) == ErrorKind::kNone);
  CHECK(results == 2);
  CHECK(check_geosearch_reply(v, 1, &results) == ErrorKind::kBadResults);
  pos = 0;
  CHECK(parse_resp("*0\r\n", &pos, &v) == RespParse::kComplete);
  CHECK(check_geosearch_reply(v, 5, &results) == ErrorKind::kBadResults);
  pos = 0;
  CHECK(parse_resp("?x\r\n", &pos, &v) == RespParse::kMalformed);
  pos = 0;
  CHECK(parse_resp("$3\r\nabcd\r\n", &pos, &v) == RespParse::kMalformed);
}

TEST_CASE("load options: durations with units; a bare number is seconds") {
  double d = -1;
  CHECK(parse_duration("30s", &d) == "");
  CHECK(d == doctest::Approx(30));
  CHECK(parse_duration("500ms", &d) == "");
  CHECK(d == doctest::Approx(0.5));
  CHECK(parse_duration("2m", &d) == "");
  CHECK(d == doctest::Approx(120));
  CHECK(parse_duration("1h", &d) == "");
  CHECK(d == doctest::Approx(3600));
  CHECK(parse_duration("4", &d) == "");  // the old meaning: seconds
  CHECK(d == doctest::Approx(4));
  CHECK(parse_duration("0.25", &d) == "");
  CHECK(d == doctest::Approx(0.25));
  CHECK(parse_duration("1.5s", &d) == "");
  CHECK(d == doctest::Approx(1.5));
  d = -1;
  std::string e = parse_duration("5x", &d);
  CHECK(e.find("unknown unit \"x\"") != std::string::npos);
  CHECK(d == -1);  // untouched on error
  CHECK(parse_duration("10sec", &d).find("unknown unit") != std::string::npos);
  CHECK(parse_duration("ms", &d).find("no number") != std::string::npos);
  CHECK(!parse_duration("", &d).empty());
  CHECK(!parse_duration("-1s", &d).empty());
  CHECK(!parse_duration("1e400", &d).empty());
  CHECK(!parse_duration("3 s", &d).empty());
  CHECK(!parse_duration("s5", &d).empty());
}

TEST_CASE("load options: HOST:PORT targets, IPv6 in brackets") {
  std::string host;
  int port = 0;
  CHECK(parse_host_port("127.0.0.1:12000", &host, &port) == "");
  CHECK(host == "127.0.0.1");
  CHECK(port == 12000);
  CHECK(parse_host_port("[::1]:12001", &host, &port) == "");
  CHECK(host == "::1");
  CHECK(port == 12001);
  CHECK(parse_host_port("[fe80::1:2]:1", &host, &port) == "");
  CHECK(host == "fe80::1:2");
  CHECK(port == 1);
  CHECK(parse_host_port("::1:12000", &host, &port).find("brackets") != std::string::npos);
  CHECK(!parse_host_port("[::1]12000", &host, &port).empty());
  CHECK(!parse_host_port("[::1:12000", &host, &port).empty());
  CHECK(!parse_host_port("[]:80", &host, &port).empty());
  CHECK(!parse_host_port("127.0.0.1", &host, &port).empty());
  CHECK(!parse_host_port(":80", &host, &port).empty());
  CHECK(!parse_host_port("127.0.0.1:0", &host, &port).empty());
  CHECK(!parse_host_port("127.0.0.1:65536", &host, &port).empty());
  CHECK(!parse_host_port("127.0.0.1:80x", &host, &port).empty());

  SocketAddress a;
  CHECK(make_address("::1", 9, &a));
  CHECK(a.family == AF_INET6);
  CHECK(a.length == sizeof(sockaddr_in6));
  CHECK(ntohs(reinterpret_cast<const sockaddr_in6*>(a.get())->sin6_port) == 9);
  CHECK(make_address("127.0.0.1", 10, &a));
  CHECK(a.family == AF_INET);
  CHECK(ntohs(reinterpret_cast<const sockaddr_in*>(a.get())->sin_port) == 10);
  CHECK(make_address("localhost", 10, &a));
  CHECK(a.family == AF_INET);
  CHECK(!make_address("example.org", 10, &a));
  CHECK(!make_address("[::1]", 10, &a));
}

TEST_CASE("load percentile export: HdrHistogram iteration and the .hgrm layout") {
  Histogram empty;
  CHECK(percentile_points(empty).empty());
  Histogram h;
  for (uint64_t us = 1; us <= 1000; ++us) h.record(us * 1000);  // 1 us .. 1 ms, 1000 values
  auto pts = percentile_points(h);
  REQUIRE(pts.size() > 20);
  CHECK(pts.front().percentile == 0);
  CHECK(pts.front().value_ns == 1000);  // the min
  CHECK(pts.back().percentile == 100);
  CHECK(pts.back().value_ns == 1000000);  // the exact max
  CHECK(pts.back().count == 1000);
  for (size_t i = 1; i < pts.size(); ++i) {
    CHECK(pts[i].percentile > pts[i - 1].percentile);
    CHECK(pts[i].value_ns >= pts[i - 1].value_ns);
    CHECK(pts[i].count >= pts[i - 1].count);
    // Each point's value holds at least its percentile of the values.
    CHECK(static_cast<double>(pts[i].count) >= pts[i].percentile / 100.0 * 1000 - 1e-9);
  }
  // Ticks: 10 per halving of the distance to 100% (5 per half distance), the first step 10%.
  CHECK(pts[1].percentile == doctest::Approx(10));
  CHECK(pts[2].percentile == doctest::Approx(20));
  // No tick finer than the 1000 values resolve (1/(1-p) <= 1000) before the 100% line.
  CHECK(1.0 / (1.0 - pts[pts.size() - 2].percentile / 100.0) <= 1000.0);
  // The 50% point is near 500 us.
  for (const auto& p : pts)
    if (p.percentile == doctest::Approx(50)) CHECK(p.value_ns == doctest::Approx(500000).epsilon(0.01));

  std::string text = format_hgrm(h, "test");
  CHECK(text.find("       Value     Percentile TotalCount 1/(1-Percentile)\n\n") != std::string::npos);
  CHECK(text.find("      0.0010 0.000000000000          1           1.00\n") != std::string::npos);
  CHECK(text.find("      1.0000 1.000000000000       1000\n") != std::string::npos);
  CHECK(text.find("#[Total count    =         1000") != std::string::npos);

  Histogram one;
  one.record(42000);
  auto single = percentile_points(one);
  REQUIRE(single.size() == 2);  // 0% and 100%, both the one value
  CHECK(single[0].value_ns == 42000);
  CHECK(single[1].value_ns == 42000);
}
