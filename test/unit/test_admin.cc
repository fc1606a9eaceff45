// Unit tests for the admin endpoint's pieces: the request parser's bounds, the Prometheus text
// format (escaping of client-chosen label values), percent-decoding, query parameters and JSON strings.
#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "herd/admin_session.h"
#include "herd/metrics.h"
#include "http/prometheus_text.h"
#include "http/request_parser.h"

using http::RequestParser;
using State = RequestParser::State;

namespace {
State feed_all(RequestParser& p, std::string_view data, size_t* used) { return p.feed(data, used); }
}  // namespace

TEST_SUITE("admin request parser") {
  TEST_CASE("a GET with headers, fed a byte at a time") {
    RequestParser p;
    std::string req = "GET /v1/clients/kiwi?x=1 HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer t\r\n\r\n";
    State s = State::kIncomplete;
    for (size_t i = 0; i < req.size(); ++i) {
      size_t used = 0;
      s = p.feed(std::string_view(req).substr(i, 1), &used);
      CHECK(used == 1);
      if (i + 1 < req.size()) REQUIRE(s == State::kIncomplete);
    }
    REQUIRE(s == State::kComplete);
    CHECK(p.request().method == "GET");
    CHECK(p.request().path() == "/v1/clients/kiwi");
    REQUIRE(p.request().header("authorization"));
    CHECK(*p.request().header("authorization") == "Bearer t");
    CHECK(p.request().keep_alive);
  }

  TEST_CASE("pipelined requests stop after the first") {
    RequestParser p;
    std::string two = "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.0\r\n\r\n";
    size_t used = 0;
    REQUIRE(feed_all(p, two, &used) == State::kComplete);
    CHECK(used == std::string("GET /a HTTP/1.1\r\n\r\n").size());
    CHECK(p.request().target == "/a");
    p.reset();
    size_t used2 = 0;
    REQUIRE(p.feed(std::string_view(two).substr(used), &used2) == State::kComplete);
    CHECK(p.request().target == "/b");
    CHECK_FALSE(p.request().keep_alive);  // HTTP/1.0 without keep-alive
  }

  TEST_CASE("methods other than GET and HEAD are refused with 405") {
    for (const char* m : {"POST", "PUT", "DELETE", "OPTIONS"}) {
      RequestParser p;
      size_t used = 0;
      std::string req = std::string(m) + " / HTTP/1.1\r\n\r\n";
      CHECK(p.feed(req, &used) == State::kError);
      CHECK(p.error_status() == 405);
    }
    RequestParser p;
    size_t used = 0;
    CHECK(p.feed("BREW /pot HTTP/1.1\r\n\r\n", &used) == State::kError);
    CHECK((p.error_status() == 405 || p.error_status() == 400));
  }

  TEST_CASE("garbage and bodies are refused") {
    RequestParser p;
    size_t used = 0;
    CHECK(p.feed("\x01\x02 nonsense\r\n\r\n", &used) == State::kError);
    CHECK(p.error_status() >= 400);
    RequestParser q;
    CHECK(q.feed("GET / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", &used) == State::kError);
    CHECK(q.error_status() == 413);
    RequestParser r;
    CHECK(r.feed("GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", &used) == State::kError);
    CHECK(r.error_status() == 413);
  }

  TEST_CASE("a Transfer-Encoding is refused with an Upgrade too (found by fuzz_http_request)") {
    // With Connection: Upgrade, llhttp hands over the bytes after the head instead of refusing a
    // request whose last coding is not chunked: the parser must refuse the body it announces.
    for (const char* te : {"gzip", "chunked, gzip", "chunked\r\n 050-ked"}) {
      RequestParser p;
      size_t used = 0;
      const std::string req = std::string("GET / HTTP/1.1\r\nTransfer-Encoding: ") + te +
                              "\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
      const std::string coding = te;
      CAPTURE(coding);
      CHECK(p.feed(req, &used) == State::kError);
      CHECK((p.error_status() == 413 || p.error_status() == 400));
    }
    // An empty Transfer-Encoding has no chunked as its last coding either (llhttp ignores it).
    for (const char* te : {"Transfer-Encoding: \r\n", "Transfer-Encoding:\r\nConnection: Upgrade\r\nUpgrade: b\r\n"}) {
      RequestParser p;
      size_t used = 0;
      const std::string req = std::string("GET / HTTP/1.1\r\n") + te + "\r\n";
      CAPTURE(req);
      CHECK(p.feed(req, &used) == State::kError);
      CHECK((p.error_status() == 413 || p.error_status() == 400));
    }
    // An upgrade without a body is still an ordinary GET here.
    RequestParser q;
    size_t used = 0;
    CHECK(q.feed("GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", &used) == State::kComplete);
  }

  TEST_CASE("HEAD is accepted like GET, and the request's HTTP version is told") {
    // README: "GET and HEAD only (405)": HEAD is one of the two, and the session answers it without
    // a body. An HTTP/1.0 request is flagged, since its response must say keep-alive to keep it.
    RequestParser p;
    size_t used = 0;
    REQUIRE(p.feed("HEAD /metrics HTTP/1.1\r\n\r\n", &used) == State::kComplete);
    CHECK(p.request().method == "HEAD");
    CHECK_FALSE(p.request().http_1_0);
    RequestParser q;
    REQUIRE(q.feed("GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &used) == State::kComplete);
    CHECK(q.request().http_1_0);
    CHECK(q.request().keep_alive);
  }

  TEST_CASE("versions other than HTTP/1.x are refused with 505") {
    // The admin port speaks HTTP/1.0 and 1.1 only; llhttp parses the heads of 0.9 and 2.0 too.
    for (const char* v : {"HTTP/0.9", "HTTP/2.0"}) {
      RequestParser p;
      size_t used = 0;
      const std::string req = std::string("GET / ") + v + "\r\n\r\n";
      CAPTURE(req);
      CHECK(p.feed(req, &used) == State::kError);
      CHECK(p.error_status() == 505);
    }
  }

  TEST_CASE("any announced body is refused, one byte too; Content-Length: 0 is no body") {
    // README: "no body (413)". A Content-Length of 1 announces a body; of 0, none.
    RequestParser p;
    size_t used = 0;
    CHECK(p.feed("GET / HTTP/1.1\r\nContent-Length: 1\r\n\r\nx", &used) == State::kError);
    CHECK(p.error_status() == 413);
    RequestParser q;
    CHECK(q.feed("GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", &used) == State::kComplete);
  }

  TEST_CASE("a header field without a name is refused (found by fuzz_http_request)") {
    for (const char* head : {"GET / HTTP/1.1\r\n: empty\r\n\r\n", "GET / HTTP/1.1\r\nHost: a\r\n:\r\n\r\n",
                             "GET / HTTP/1.1\r\n:x\r\nHost: a\r\n\r\n"}) {
      RequestParser p;
      size_t used = 0;
      const std::string req = head;
      CAPTURE(req);
      CHECK(p.feed(req, &used) == State::kError);
      CHECK(p.error_status() == 400);
      CHECK(p.error() == "a header field without a name");
    }
  }

  TEST_CASE("a huge header is bounded, whether it comes at once or slowly") {
    http::RequestLimits limits;
    limits.max_head_bytes = 1024;
    RequestParser p(limits);
    size_t used = 0;
    std::string big = "GET / HTTP/1.1\r\nX: " + std::string(100000, 'a');
    CHECK(p.feed(big, &used) == State::kError);
    CHECK(p.error_status() == 431);
    CHECK(used <= limits.max_head_bytes + 1);
    // Slowloris-style: many small header lines that never end the head.
    RequestParser q(limits);
    State s = q.feed("GET / HTTP/1.1\r\n", &used);
    for (int i = 0; i < 1000 && s == State::kIncomplete; ++i) s = q.feed("X-Slow: 1\r\n", &used);
    CHECK(s == State::kError);
    CHECK(q.error_status() == 431);
    // Too many header fields.
    http::RequestLimits few;
    few.max_headers = 3;
    RequestParser r(few);
    CHECK(r.feed("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", &used) == State::kError);
    CHECK(r.error_status() == 431);
  }

  TEST_CASE("the head bound is exact: max_head_bytes pass, one byte more does not") {
    const size_t max = http::RequestLimits{}.max_head_bytes;
    REQUIRE(max == 8192);  // README: "a head of at most 8 KiB"
    // A complete head of `n` bytes, the blank line included.
    auto head = [](size_t n) {
      std::string h = "GET /healthz HTTP/1.1\r\nX: ";
      h += std::string(n - h.size() - 4, 'a');
      return h + "\r\n\r\n";
    };
    for (bool bytewise : {false, true}) {
      CAPTURE(bytewise);
      for (size_t n : {max - 1, max, max + 1, max + 2}) {
        CAPTURE(n);
        const std::string req = head(n) + "GET /next HTTP/1.1\r\n\r\n";  // a pipelined request follows
        RequestParser p;
        size_t used = 0;
        State s = State::kIncomplete;
        if (bytewise) {
          for (size_t i = 0; i < req.size() && s == State::kIncomplete; ++i) {
            s = p.feed(std::string_view(req).substr(i, 1), &used);
          }
        } else {
          s = p.feed(req, &used);
        }
        if (n <= max) {
          REQUIRE(s == State::kComplete);
          if (!bytewise) CHECK(used == n);
        } else {
          REQUIRE(s == State::kError);
          CHECK(p.error_status() == 431);
        }
      }
    }
  }

  TEST_CASE("a head ends with a blank line: CR and any byte but LF is refused, not taken as its end") {
    // llhttp 8.1.0 ends the head at CR followed by any byte (CVE-2023-30589) and takes that byte
    // along: found by fuzz_http_request. The request after it would start one byte late.
    for (std::string req : {"GET / HTTP/1.1\r\n\rXGET /b HTTP/1.1\r\n\r\n", "GET / HTTP/1.1\n\rX",
                            "GET / HTTP/1.1\r\nA: b\r\n\r\r\n"}) {
      CAPTURE(req);
      for (bool bytewise : {false, true}) {
        CAPTURE(bytewise);
        RequestParser p;
        size_t used = 0;
        State s = State::kIncomplete;
        const std::string_view r(req);
        if (bytewise) {
          for (size_t i = 0; i < r.size() && s == State::kIncomplete; ++i) s = p.feed(r.substr(i, 1), &used);
        } else {
          s = p.feed(r, &used);
        }
        CHECK(s == State::kError);
        CHECK(p.error_status() == 400);
      }
    }
    // A bare LF ends a line (RFC 9112 2.2 allows it), so LF LF is a whole head.
    RequestParser p;
    size_t used = 0;
    CHECK(p.feed("GET / HTTP/1.1\n\n", &used) == State::kComplete);
    CHECK(used == 16);
  }

  TEST_CASE("optional whitespace around header values is not part of them") {
    const std::string req =
        "GET / HTTP/1.1\r\nAuthorization: Bearer t \t \r\nX-Pad:\t v\t\r\nX-Blank:   \r\nX-In: a  b\r\n\r\n";
    for (bool bytewise : {false, true}) {
      CAPTURE(bytewise);
      RequestParser p;
      size_t used = 0;
      State s = State::kIncomplete;
      if (bytewise) {
        for (size_t i = 0; i < req.size(); ++i) s = p.feed(std::string_view(req).substr(i, 1), &used);
      } else {
        s = p.feed(req, &used);
      }
      REQUIRE(s == State::kComplete);
      REQUIRE(p.request().header("authorization"));
      CHECK(*p.request().header("authorization") == "Bearer t");
      REQUIRE(p.request().header("x-pad"));
      CHECK(*p.request().header("x-pad") == "v");
      REQUIRE(p.request().header("x-blank"));
      CHECK(p.request().header("x-blank")->empty());
      REQUIRE(p.request().header("x-in"));
      CHECK(*p.request().header("x-in") == "a  b");  // whitespace inside a value is kept
    }
  }
}

TEST_SUITE("prometheus text") {
  TEST_CASE("families, samples and label escaping") {
    http::PrometheusText t;
    t.family("herd_x_total", "counter", "Things.\nWith a \\ newline.");
    t.sample({{"peer", "a\"b\\c\nd"}}, uint64_t{7});
    t.sample({{"a", "1"}, {"b", "2"}}, 3.0);
    t.family("herd_y", "gauge", "Y.");
    t.sample(0.5);
    CHECK(t.text() ==
          "# HELP herd_x_total Things.\\nWith a \\\\ newline.\n"
          "# TYPE herd_x_total counter\n"
          "herd_x_total{peer=\"a\\\"b\\\\c\\nd\"} 7\n"
          "herd_x_total{a=\"1\",b=\"2\"} 3\n"
          "# HELP herd_y Y.\n# TYPE herd_y gauge\n"
          "herd_y 0.5\n");
  }

  TEST_CASE("a family of one sample names itself once") {
    http::PrometheusText t;
    t.counter("herd_a_total", "A.", uint64_t{3});
    t.gauge("herd_b", "B.", 2.5);
    CHECK(t.text() ==
          "# HELP herd_a_total A.\n# TYPE herd_a_total counter\nherd_a_total 3\n"
          "# HELP herd_b B.\n# TYPE herd_b gauge\nherd_b 2.5\n");
  }

  TEST_CASE("histograms are cumulative with +Inf, _sum and _count") {
    http::PrometheusText t;
    const double bounds[] = {0.001, 0.5};
    const uint64_t cum[] = {2, 5};
    t.family("h", "histogram", "H.");
    t.histogram({}, bounds, cum, 2, 1.25, 6);
    CHECK(t.text() ==
          "# HELP h H.\n# TYPE h histogram\n"
          "h_bucket{le=\"0.001\"} 2\nh_bucket{le=\"0.5\"} 5\nh_bucket{le=\"+Inf\"} 6\n"
          "h_sum 1.25\nh_count 6\n");
  }

  TEST_CASE("numbers") {
    std::string s;
    http::PrometheusText::append_number(s, 1.0 / 0.0);
    s += ' ';
    http::PrometheusText::append_number(s, 12345.0);
    CHECK(s == "+Inf 12345");
  }
}

TEST_SUITE("admin helpers") {
  TEST_CASE("percent decoding") {
    std::string out;
    CHECK(herd::percent_decode("a%20b%2Fc", &out));
    CHECK(out == "a b/c");
    CHECK_FALSE(herd::percent_decode("a%2", &out));
    CHECK_FALSE(herd::percent_decode("a%zz", &out));
  }
  TEST_CASE("an escape cut off at the end of the text is refused, whatever follows it in memory") {
    // percent_decode takes a view: "%2" at its end is two characters short of an escape even when the
    // bytes after the view would complete one.
    const std::string text = "a%2Fb";
    std::string out;
    CHECK_FALSE(herd::percent_decode(std::string_view(text).substr(0, 3), &out));
    CHECK_FALSE(herd::percent_decode(std::string_view(text).substr(0, 2), &out));
  }
  TEST_CASE("a query parameter's name must match, not just its length") {
    std::string v;
    CHECK(herd::query_parameter("/v1/dashboard?tokex=T&token=U", "token", &v));
    CHECK(v == "U");
  }
  TEST_CASE("Bearer credentials: the scheme in any case, then spaces, then the credentials") {
    // admin_text.h: false when the scheme is another or no credentials follow.
    std::string_view c;
    CHECK(herd::bearer_credentials("bEaReR  tok", &c));
    CHECK(c == "tok");
    CHECK_FALSE(herd::bearer_credentials("Bearer", &c));
    CHECK_FALSE(herd::bearer_credentials("Bearer   ", &c));
    CHECK_FALSE(herd::bearer_credentials("Basic tok", &c));
  }
  TEST_CASE("query parameters: any position, percent-decoded, the first of a name") {
    std::string v;
    CHECK(herd::query_parameter("/v1/dashboard?token=T", "token", &v));
    CHECK(v == "T");
    CHECK(herd::query_parameter("/v1/dashboard?x=1&token=T", "token", &v));
    CHECK(v == "T");
    CHECK(herd::query_parameter("/v1/dashboard?token=T&y=2", "token", &v));
    CHECK(v == "T");
    CHECK(herd::query_parameter("/v1/dashboard?a&x=1&token=a%2Bb%26c&y=2", "token", &v));
    CHECK(v == "a+b&c");
    CHECK(herd::query_parameter("/v1/dashboard?to%6Ben=T", "token", &v));
    CHECK(v == "T");
    CHECK(herd::query_parameter("/v1/dashboard?token=first&token=second", "token", &v));
    CHECK(v == "first");
    CHECK(herd::query_parameter("/v1/dashboard?token=", "token", &v));
    CHECK(v.empty());
    CHECK_FALSE(herd::query_parameter("/v1/dashboard", "token", &v));
    CHECK_FALSE(herd::query_parameter("/v1/dashboard?", "token", &v));
    CHECK_FALSE(herd::query_parameter("/v1/dashboard?xtoken=T&tokens=T&token", "token", &v));
    CHECK_FALSE(herd::query_parameter("/v1/dashboard?token=%zz", "token", &v));
  }
  TEST_CASE("json strings") {
    std::string out;
    herd::append_json_string(out, "a\"b\\c\n\x01");
    CHECK(out == "\"a\\\"b\\\\c\\u000a\\u0001\"");
  }

  TEST_CASE("json strings: UTF-8 is copied, any other byte becomes U+FFFD") {
    std::string out;
    herd::append_json_string(out, "caf\xc3\xa9 \xf0\x9f\x98\x80 \xe2\x82\xac");  // é, an emoji, €
    CHECK(out == "\"caf\xc3\xa9 \xf0\x9f\x98\x80 \xe2\x82\xac\"");
    out.clear();
    // A client ID of stray bytes (the review's d2\xff\xfe), a truncated sequence, an overlong "/",
    // a surrogate, a code point past U+10FFFF.
    herd::append_json_string(out, "d2\xff\xfe \xe2\x82 \xc0\xaf \xed\xa0\x80 \xf4\x90\x80\x80");
    CHECK(out ==
          "\"d2\\ufffd\\ufffd \\ufffd\\ufffd \\ufffd\\ufffd \\ufffd\\ufffd\\ufffd "
          "\\ufffd\\ufffd\\ufffd\\ufffd\"");
  }

  TEST_CASE("utf8_sequence_length agrees with decoding by code point, for every 1- to 3-byte string") {
    // The reference decodes the bits and then asks whether the value is a scalar value that needs
    // exactly that many bytes.
    auto reference = [](const unsigned char* b, size_t size) -> size_t {
      if (size == 0) return 0;
      size_t n;
      uint32_t cp;
      if (b[0] < 0x80) return 1;
      if ((b[0] & 0xe0) == 0xc0) {
        n = 2, cp = b[0] & 0x1fu;
      } else if ((b[0] & 0xf0) == 0xe0) {
        n = 3, cp = b[0] & 0x0fu;
      } else if ((b[0] & 0xf8) == 0xf0) {
        n = 4, cp = b[0] & 0x07u;
      } else {
        return 0;
      }
      if (size < n) return 0;
      for (size_t k = 1; k < n; ++k) {
        if ((b[k] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (b[k] & 0x3fu);
      }
      static const uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
      if (cp < kMin[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
      return n;
    };
    size_t checked = 0, mismatches = 0;
    unsigned char b[4] = {};
    for (unsigned b0 = 0; b0 < 256; ++b0) {
      for (unsigned b1 = 0; b1 < 256; ++b1) {
        for (unsigned b2 = 0; b2 < 256; ++b2) {
          b[0] = static_cast<unsigned char>(b0), b[1] = static_cast<unsigned char>(b1),
          b[2] = static_cast<unsigned char>(b2), b[3] = 0x80;
          for (size_t size : {size_t{1}, size_t{2}, size_t{3}, size_t{4}}) {
            if (size < 3 && b2 != 0) continue;
            if (size < 2 && b1 != 0) continue;
            const std::string_view s(reinterpret_cast<const char*>(b), size);
            mismatches += herd::utf8_sequence_length(s) != reference(b, size);
            ++checked;
          }
        }
      }
    }
    CHECK(checked > 33'000'000);
    CHECK(mismatches == 0);
  }
}

TEST_SUITE("upstream metrics") {
  TEST_CASE("attempt ends in the provider's log are counted by status class and latency") {
    herd::UpstreamMetrics m(2);
    m.observe_log(0, "HTTP 200 in 12 ms: OK, 3 results");
    m.observe_log(1, "HTTP 503 in 40 ms: UNKNOWN_ERROR");
    m.observe_log(1, "HTTP 403 in 5 ms: REQUEST_DENIED");
    m.observe_log(0, "failed after 10000 ms: timed out");
    m.observe_log(0, "GET /maps/api/place/nearbysearch/json?location=...");  // a request: not counted
    m.observe_log(0, "retrying in 250 ms");
    CHECK(m.count(0) == 1);
    CHECK(m.count(1) == 1);
    CHECK(m.count(2) == 1);
    CHECK(m.count(3) == 0);
    CHECK(m.count(4) == 1);
    uint64_t cum[herd::LatencyHistogram::kBuckets] = {}, total = 0, sum_ms = 0;
    m.latency(cum, &total, &sum_ms);
    CHECK(total == 4);
    CHECK(sum_ms == 12 + 40 + 5 + 10000);
    CHECK(cum[herd::LatencyHistogram::kBuckets - 1] == 3);  // 10 s is above the last bound (1 s)
  }
}

TEST_SUITE("recent locations") {
  TEST_CASE("the ring keeps the newest, and at most its size from each window") {
    using herd::RecentLocations;
    constexpr int64_t kW = RecentLocations::kWindowMs;
    static_assert(kW > 1);
    RecentLocations recent;
    // A burst in one window: the first kSize are kept, the rest passed over, to its last millisecond.
    for (int i = 0; i < 40; ++i) recent.add("burst" + std::to_string(i), "A", "+1.5-2.25", 10 * kW + i % 2);
    recent.add("passed-over", "A", "+9.0+9.0", 11 * kW - 1);
    std::vector<RecentLocations::Entry> got;
    recent.copy_to(&got);
    REQUIRE(got.size() == RecentLocations::kSize);
    CHECK(got.front().client == "burst" + std::to_string(RecentLocations::kSize - 1));  // newest first
    CHECK(got.back().client == "burst0");
    CHECK(got.back().lat == 1.5);
    CHECK(got.back().lng == -2.25);
    // The next window takes locations again; the ring drops its oldest.
    recent.add("later", "B", "+3.0+4.0", 11 * kW);
    got.clear();
    recent.copy_to(&got);
    REQUIRE(got.size() == RecentLocations::kSize);
    CHECK(got.front().client == "later");
    CHECK(got.front().origin == "B");
    CHECK(got.front().lat == 3);
    CHECK(got.front().lng == 4);
    CHECK(got.front().unix_ms == 11 * kW);
    CHECK(got.back().client == "burst1");
    // Long IDs are cut.
    recent.add(std::string(200, 'x'), "B", "+0.0+0.0", 11 * kW + 1);
    got.clear();
    recent.copy_to(&got);
    CHECK(got.front().client.size() == RecentLocations::kMaxIdBytes);
  }
}
