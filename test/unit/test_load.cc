// Unit tests for herd-load's header-only parts: the latency histogram, herd reply framing and
// checking, and RESP parsing and checking.
#include <doctest/doctest.h>

#include <string>

#include "tools/load/herd_reply.h"
#include "tools/load/histogram.h"
#include "tools/load/resp_reply.h"

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
