// Unit tests for http/response_parser (and the gzip decoder under it): every body framing, fed
// whole and byte by byte, and hostile responses: huge or too many headers, bad chunk sizes, a body
// longer than announced, a response that never ends, gzip bombs, corrupt and truncated gzip.
#include <doctest/doctest.h>

#include <zlib.h>

#include <string>
#include <string_view>

#include "http/response_parser.h"
#include "http/url.h"

using http::ParserLimits;
using http::ResponseParser;
using State = http::ResponseParser::State;

namespace {

// gzip-compresses `data` with zlib.
std::string gzip(std::string_view data) {
  z_stream zs{};
  REQUIRE(deflateInit2(&zs, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY) == Z_OK);
  std::string out(deflateBound(&zs, data.size()) + 64, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  REQUIRE(deflate(&zs, Z_FINISH) == Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

std::string chunked(std::string_view body, size_t piece) {
  std::string out;
  char size[32];
  for (size_t i = 0; i < body.size(); i += piece) {
    std::string_view part = body.substr(i, piece);
    std::snprintf(size, sizeof size, "%zx\r\n", part.size());
    out.append(size).append(part).append("\r\n");
  }
  return out + "0\r\n\r\n";
}

// Feeds `wire` in one piece; returns the state and sets *consumed.
State feed_all(ResponseParser& p, std::string_view wire, size_t* consumed = nullptr) {
  size_t used = 0;
  State s = p.feed(wire, &used);
  if (consumed) *consumed = used;
  return s;
}

// Feeds `wire` one byte at a time until the parser stops being incomplete.
State feed_bytes(ResponseParser& p, std::string_view wire, size_t* total = nullptr) {
  size_t sum = 0;
  State s = State::kIncomplete;
  for (size_t i = 0; i < wire.size() && s == State::kIncomplete; ++i) {
    size_t used = 0;
    s = p.feed(wire.substr(i, 1), &used);
    sum += used;
  }
  if (total) *total = sum;
  return s;
}

}  // namespace

TEST_SUITE("http response parser") {

TEST_CASE("Content-Length body, whole and byte by byte") {
  std::string wire = "HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=UTF-8\r\n"
                     "Content-Length: 11\r\n\r\n{\"a\" : 17}\n";
  for (bool bytewise : {false, true}) {
    ResponseParser p;
    size_t used = 0;
    State s = bytewise ? feed_bytes(p, wire, &used) : feed_all(p, wire, &used);
    REQUIRE(s == State::kComplete);
    CHECK(used == wire.size());
    CHECK(p.response().status == 200);
    CHECK(p.response().body == "{\"a\" : 17}\n");
    REQUIRE(p.response().header("content-type"));
    CHECK(*p.response().header("CONTENT-TYPE") == "application/json; charset=UTF-8");
    CHECK(p.keep_alive());
  }
}

TEST_CASE("chunked body with extensions and trailers, whole and byte by byte") {
  std::string body(5000, 'x');
  for (size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>('a' + i % 26);
  std::string wire = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(body, 777);
  // A chunk extension and a trailer field are legal and ignored.
  std::string wire2 = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "3;name=value\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n";
  for (bool bytewise : {false, true}) {
    ResponseParser p;
    size_t used = 0;
    REQUIRE((bytewise ? feed_bytes(p, wire, &used) : feed_all(p, wire, &used)) == State::kComplete);
    CHECK(used == wire.size());
    CHECK(p.response().body == body);
    CHECK(p.keep_alive());
    ResponseParser q;
    REQUIRE((bytewise ? feed_bytes(q, wire2) : feed_all(q, wire2)) == State::kComplete);
    CHECK(q.response().body == "abc");
  }
}

TEST_CASE("a body delimited by the close completes at EOF and ends the connection") {
  ResponseParser p;
  CHECK(feed_all(p, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nhello ") == State::kIncomplete);
  CHECK(feed_all(p, "world") == State::kIncomplete);
  CHECK(p.finish() == State::kComplete);
  CHECK(p.response().body == "hello world");
  CHECK_FALSE(p.keep_alive());
}

TEST_CASE("Connection: close and HTTP/1.0 end the connection; keep-alive otherwise") {
  ResponseParser a;
  REQUIRE(feed_all(a, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok") == State::kComplete);
  CHECK_FALSE(a.keep_alive());
  ResponseParser b;
  REQUIRE(feed_all(b, "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok") == State::kComplete);
  CHECK_FALSE(b.keep_alive());
  ResponseParser c;
  REQUIRE(feed_all(c, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n") == State::kComplete);
  CHECK(c.keep_alive());
  CHECK(c.response().status == 503);
  CHECK(c.response().body.empty());
}

TEST_CASE("an interim 100 Continue is skipped; 204 has no body") {
  ResponseParser p;
  std::string wire = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nX-A: b\r\nContent-Length: 3\r\n\r\nabc";
  REQUIRE(feed_bytes(p, wire) == State::kComplete);
  CHECK(p.response().status == 200);
  CHECK(p.response().body == "abc");
  REQUIRE(p.response().headers.size() == 2);
  CHECK(p.response().headers[0].name == "X-A");
  ResponseParser q;
  REQUIRE(feed_all(q, "HTTP/1.1 204 No Content\r\n\r\n") == State::kComplete);
  CHECK(q.response().status == 204);
}

TEST_CASE("1xx, 204 and 304 end at the blank line, whatever Content-Length or Transfer-Encoding say") {
  // RFC 9112 6.3: these never have a body. A 304 carries the Content-Length of the representation
  // it stands for; waiting for those bytes would hold the request until its timeout.
  for (const char* head : {"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n",
                           "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
                           "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n",
                           "HTTP/1.1 304 Not Modified\r\nContent-Encoding: gzip\r\nContent-Length: 99\r\n\r\n",
                           "HTTP/1.1 204 No Content\r\nContent-Length: 999999999999\r\n\r\n"}) {
    CAPTURE(head);
    ResponseParser p;
    size_t used = 0;
    REQUIRE(feed_all(p, head, &used) == State::kComplete);
    CHECK(used == std::string_view(head).size());
    CHECK(p.response().body.empty());
    CHECK(p.keep_alive());
    ResponseParser q;
    CHECK(feed_bytes(q, head) == State::kComplete);
  }
  // An interim response's framing headers do not make the final response part of its body.
  for (const char* interim : {"HTTP/1.1 100 Continue\r\nContent-Length: 3\r\n\r\n",
                              "HTTP/1.1 103 Early Hints\r\nTransfer-Encoding: chunked\r\n\r\n"}) {
    CAPTURE(interim);
    std::string wire = std::string(interim) + "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
    ResponseParser p;
    REQUIRE(feed_all(p, wire) == State::kComplete);
    CHECK(p.response().status == 200);
    CHECK(p.response().body == "abc");
    ResponseParser q;
    REQUIRE(feed_bytes(q, wire) == State::kComplete);
    CHECK(q.response().body == "abc");
  }
}

TEST_CASE("a body longer than announced: the response ends where announced, the rest is left") {
  std::string wire = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA BYTES";
  ResponseParser p;
  size_t used = 0;
  REQUIRE(feed_all(p, wire, &used) == State::kComplete);
  CHECK(p.response().body == "hello");
  CHECK(used == wire.size() - std::string_view("EXTRA BYTES").size());
  // A second response pipelined behind the first is not swallowed either.
  std::string two = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nAHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nB";
  ResponseParser q;
  REQUIRE(feed_all(q, two, &used) == State::kComplete);
  CHECK(q.response().body == "A");
  CHECK(used == two.size() / 2);
  CHECK(q.feed("more", &used) == State::kComplete);  // complete stays complete
  CHECK(used == 0);
}

TEST_CASE("a response that never ends: incomplete until EOF, then an error") {
  ResponseParser p;
  CHECK(feed_all(p, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly a part") == State::kIncomplete);
  CHECK(p.finish() == State::kError);
  CHECK(p.error().find("middle of the response") != std::string::npos);
  ResponseParser c;
  CHECK(feed_all(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab") == State::kIncomplete);
  CHECK(c.finish() == State::kError);
  ResponseParser h;
  CHECK(feed_all(h, "HTTP/1.1 200 OK\r\nContent-Le") == State::kIncomplete);
  CHECK(h.finish() == State::kError);
  ResponseParser nothing;
  CHECK(nothing.finish() == State::kError);
  CHECK(nothing.error() == "the connection closed before any response");
  CHECK_FALSE(nothing.started());
}

TEST_CASE("huge headers and too many headers are refused") {
  ParserLimits limits;
  limits.max_header_bytes = 4096;
  limits.max_headers = 10;
  {
    ResponseParser p(limits);
    std::string wire = "HTTP/1.1 200 OK\r\nX-Big: " + std::string(5000, 'v') + "\r\n\r\n";
    CHECK(feed_all(p, wire) == State::kError);
    CHECK(p.error() == "header section over 4096 bytes");
  }
  {
    // The same, arriving in small pieces: the bound holds across calls.
    ResponseParser p(limits);
    std::string wire = "HTTP/1.1 200 OK\r\nX-Big: " + std::string(5000, 'v') + "\r\n\r\n";
    State s = State::kIncomplete;
    for (size_t i = 0; i < wire.size() && s == State::kIncomplete; i += 100) {
      size_t used;
      s = p.feed(std::string_view(wire).substr(i, 100), &used);
    }
    CHECK(s == State::kError);
  }
  {
    ResponseParser p(limits);
    std::string wire = "HTTP/1.1 200 OK\r\n";
    for (int i = 0; i < 11; ++i) wire += "X-H" + std::to_string(i) + ": v\r\n";
    CHECK(feed_all(p, wire + "\r\n") == State::kError);
    CHECK(p.error() == "more than 10 header fields");
  }
  {
    // Many empty header values count too.
    ResponseParser p(limits);
    std::string wire = "HTTP/1.1 200 OK\r\n";
    for (int i = 0; i < 9; ++i) wire += "X-" + std::string(460, 'n') + ":\r\n";
    CHECK(feed_all(p, wire + "\r\n") == State::kError);
  }
}

TEST_CASE("bad chunk sizes and malformed framing are errors") {
  for (const char* body : {"zz\r\nabc\r\n0\r\n\r\n", "ffffffffffffffffff1\r\n", "-5\r\nabc\r\n", "3\r\nabcX\r\n"}) {
    std::string text = body;
    CAPTURE(text);
    ResponseParser p;
    std::string wire = std::string("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n") + body;
    CHECK(feed_all(p, wire) == State::kError);
    CHECK(p.error().rfind("malformed response: ", 0) == 0);
  }
  for (const char* wire : {"HTTP/1.1 abc OK\r\n\r\n", "SMTP ready\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
                           "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc",
                           "HTTP/1.1 200 OK\r\nNoColon\r\nContent-Length: 0\r\n\r\n"}) {
    std::string text = wire;
    CAPTURE(text);
    ResponseParser p;
    CHECK(feed_all(p, wire) == State::kError);
  }
}

TEST_CASE("bodies over the limit: announced, chunked, close-delimited") {
  ParserLimits limits;
  limits.max_body_bytes = 1000;
  ResponseParser a(limits);
  CHECK(feed_all(a, "HTTP/1.1 200 OK\r\nContent-Length: 1001\r\n\r\n") == State::kError);
  CHECK(a.error() == "body of 1001 bytes announced, over the limit of 1000");
  ResponseParser b(limits);
  CHECK(feed_all(b, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(std::string(1500, 'c'), 100)) ==
        State::kError);
  CHECK(b.error() == "chunk of 100 bytes announced, over the body limit of 1000");  // the eleventh
  ResponseParser c(limits);
  CHECK(feed_all(c, "HTTP/1.1 200 OK\r\n\r\n" + std::string(999, 'c')) == State::kIncomplete);
  CHECK(feed_all(c, "cc") == State::kError);
  ResponseParser ok(limits);
  CHECK(feed_all(ok, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + std::string(1000, 'c')) == State::kComplete);
  // A chunk announced past the limit is refused at its size line, before any of its bytes.
  const std::string head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  ResponseParser d(limits);
  CHECK(feed_all(d, head + "3e9\r\n") == State::kError);
  CHECK(d.error() == "chunk of 1001 bytes announced, over the body limit of 1000");
  ResponseParser e(limits);
  CHECK(feed_all(e, head + "258\r\n" + std::string(600, 'c') + "\r\n191\r\n") == State::kError);  // 600 + 401
  CHECK(e.error() == "chunk of 401 bytes announced, over the body limit of 1000");
  ResponseParser f(limits);
  CHECK(feed_all(f, head + "258\r\n" + std::string(600, 'c') + "\r\n190\r\n" + std::string(400, 'c') + "\r\n0\r\n\r\n") ==
        State::kComplete);
  CHECK(f.response().body.size() == 1000);
}

TEST_CASE("gzip bodies are decoded: Content-Length and chunked, byte by byte") {
  std::string json = "{\n   \"status\" : \"OK\"\n}";
  for (int i = 0; i < 200; ++i) json += " pad " + std::to_string(i);
  std::string z = gzip(json);
  REQUIRE(z.size() < json.size());
  std::string cl = "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: " + std::to_string(z.size()) +
                   "\r\n\r\n" + z;
  std::string ch = "HTTP/1.1 200 OK\r\nContent-Encoding: GZIP\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(z, 50);
  for (const std::string& wire : {cl, ch}) {
    ResponseParser p;
    REQUIRE(feed_bytes(p, wire) == State::kComplete);
    CHECK(p.response().body == json);
    ResponseParser q;
    REQUIRE(feed_all(q, wire) == State::kComplete);
    CHECK(q.response().body == json);
  }
}

TEST_CASE("gzip bombs stop at the body limit; corrupt, truncated and unknown encodings fail") {
  ParserLimits limits;
  limits.max_body_bytes = 1 << 20;
  std::string zeros(64 << 20, '\0');  // 64 MiB of zeros: about 64 KiB compressed
  std::string bomb = gzip(zeros);
  std::string().swap(zeros);
  REQUIRE(bomb.size() < limits.max_body_bytes);
  ResponseParser p(limits);
  CHECK(feed_all(p, "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: " + std::to_string(bomb.size()) +
                        "\r\n\r\n" + bomb) == State::kError);
  CHECK(p.error() == "the gzip body expands to more than 1048576 bytes");
  CHECK(p.response().body.size() <= limits.max_body_bytes + 64 * 1024);

  std::string z = gzip("hello, gzip");
  std::string corrupt = z;
  corrupt[corrupt.size() / 2] ^= 0x55;
  corrupt[corrupt.size() - 3] ^= 0x55;  // the CRC/length trailer
  ResponseParser c;
  CHECK(feed_all(c, "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: " + std::to_string(corrupt.size()) +
                        "\r\n\r\n" + corrupt) == State::kError);
  CHECK(c.error().find("gzip") != std::string::npos);

  std::string cut = z.substr(0, z.size() - 6);
  ResponseParser t;
  CHECK(feed_all(t, "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: " + std::to_string(cut.size()) +
                        "\r\n\r\n" + cut) == State::kError);
  CHECK(t.error() == "the gzip body ends before its end");

  ResponseParser br;
  CHECK(feed_all(br, "HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: 1\r\n\r\nx") == State::kError);
  CHECK(br.error() == "unsupported Content-Encoding 'br'");

  ResponseParser plain;  // not gzip at all, though announced
  CHECK(feed_all(plain, "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 2\r\n\r\n{}") == State::kError);
}

TEST_CASE("a flood of empty headers with short names is bounded by the header bytes") {
  // Each header line costs its ": " and CRLF against max_header_bytes, so empty headers cannot
  // slip under the bound: 300 lines of "X:" are 1,800 bytes on the wire, over a bound of 1,000.
  ParserLimits limits;
  limits.max_header_bytes = 1000;
  limits.max_headers = 1000;
  ResponseParser p(limits);
  std::string wire = "HTTP/1.1 200 OK\r\n";
  for (int i = 0; i < 300; ++i) wire += "X:\r\n";
  CHECK(feed_all(p, wire + "Content-Length: 0\r\n\r\n") == State::kError);
  CHECK(p.error() == "header section over 1000 bytes");
}

TEST_CASE("x-gzip is gzip; an empty Content-Encoding is none") {
  // RFC 9110 8.4.1.3: a recipient should take x-gzip as gzip. An empty Content-Encoding lists no
  // coding, so the body is taken as it is.
  std::string z = gzip("{\"status\":\"OK\"}");
  ResponseParser p;
  REQUIRE(feed_all(p, "HTTP/1.1 200 OK\r\nContent-Encoding: x-gzip\r\nContent-Length: " +
                          std::to_string(z.size()) + "\r\n\r\n" + z) == State::kComplete);
  CHECK(p.response().body == "{\"status\":\"OK\"}");
  ResponseParser q;
  REQUIRE(feed_all(q, "HTTP/1.1 200 OK\r\nContent-Encoding: \r\nContent-Length: 2\r\n\r\n{}") == State::kComplete);
  CHECK(q.response().body == "{}");
}

TEST_CASE("gzip: bytes after the end of the stream in the same read are an error") {
  // The body is one gzip member: anything after its trailer is not part of it.
  std::string z = gzip("hello, gzip") + "junk";
  ResponseParser p;
  CHECK(feed_all(p, "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: " + std::to_string(z.size()) +
                        "\r\n\r\n" + z) == State::kError);
  CHECK(p.error() == "bytes after the end of the gzip body");
}

TEST_CASE("gzip: a body that expands to exactly the body limit is accepted, one byte more is not") {
  // max_body_bytes bounds "the body as delivered (decompressed)": a bound, so reaching it is fine.
  ParserLimits limits;
  limits.max_body_bytes = 40000;
  for (size_t n : {limits.max_body_bytes, limits.max_body_bytes + 1}) {
    CAPTURE(n);
    std::string z = gzip(std::string(n, 'a'));
    ResponseParser p(limits);
    State s = feed_all(p, "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: " + std::to_string(z.size()) +
                              "\r\n\r\n" + z);
    if (n <= limits.max_body_bytes) {
      REQUIRE(s == State::kComplete);
      CHECK(p.response().body.size() == n);
    } else {
      CHECK(s == State::kError);
    }
  }
}

}  // TEST_SUITE

TEST_SUITE("http url") {

TEST_CASE("endpoint URLs") {
  std::string error;
  auto u = http::parse_url("https://maps.googleapis.com", &error);
  REQUIRE(u);
  CHECK(u->tls());
  CHECK(u->host == "maps.googleapis.com");
  CHECK(u->port == 443);
  CHECK(u->base_path == "");
  CHECK(u->authority() == "maps.googleapis.com");
  u = http::parse_url("HTTP://Example.COM:8080/base/path/", &error);
  REQUIRE(u);
  CHECK_FALSE(u->tls());
  CHECK(u->host == "example.com");
  CHECK(u->port == 8080);
  CHECK(u->base_path == "/base/path");
  CHECK(u->authority() == "example.com:8080");
  CHECK(u->origin() == "http://example.com:8080");
  u = http::parse_url("https://[::1]:8443", &error);
  REQUIRE(u);
  CHECK(u->host == "::1");
  CHECK(u->authority() == "[::1]:8443");
  u = http::parse_url("https://127.0.0.1:443/", &error);
  REQUIRE(u);
  CHECK(u->authority() == "127.0.0.1");
  for (const char* bad : {"", "maps.googleapis.com", "ftp://host", "https://", "https://:443", "https://host:0",
                          "https://host:65536", "https://host:", "https://host:12a", "https://user@host",
                          "https://host/path?q=1", "https://host/#frag", "https://ho st", "https://[::1",
                          "https://[zz]:1", "https://host/a b"}) {
    CAPTURE(bad);
    error.clear();
    CHECK_FALSE(http::parse_url(bad, &error));
    CHECK_FALSE(error.empty());
  }
}

TEST_CASE("endpoint URLs: IPv6 ports, host and path characters") {
  // "[::1]:" has an empty port, like "host:"; only ":port" may follow the closing bracket.
  std::string error;
  for (const char* bad : {"https://[::1]:", "https://[::1]x", "https://[::1]8443", "https://host/a\x7f"}) {
    CAPTURE(bad);
    error.clear();
    CHECK_FALSE(http::parse_url(bad, &error));
    CHECK_FALSE(error.empty());
  }
  // A host name may hold '_' (valid_host_char), and a path may hold '@': only the authority must
  // not carry user information.
  auto u = http::parse_url("http://places_mock:8080/v1/@here", &error);
  REQUIRE(u);
  CHECK(u->host == "places_mock");
  CHECK(u->port == 8080);
  CHECK(u->base_path == "/v1/@here");
}

TEST_CASE("url_encode keeps only unreserved characters") {
  CHECK(http::url_encode("AZaz09-._~") == "AZaz09-._~");
  CHECK(http::url_encode("a b&c=d/+,\xc3\xa9") == "a%20b%26c%3Dd%2F%2B%2C%C3%A9");
}

}  // TEST_SUITE
