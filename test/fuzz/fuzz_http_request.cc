// Fuzz harness: the admin port's HTTP request parser (http/request_parser.h), which any local process
// can reach. The input is a connection's bytes, parsed as AdminSession does: request after request
// (reset() after each complete one) until an error or the end, once in one piece and once cut in two
// at a point the input picks. Properties: the two runs agree on every request and on where an error
// comes (so the outcome does not depend on how TCP cut the bytes); feed() never consumes more than
// it is given, and all of it unless a request ends inside; a complete request is GET or HEAD over
// HTTP/1.x, its head (request line to blank line) within the bound and ending in "\n", at most
// max_headers fields, names lower-case and values without the optional whitespace around them, and
// no body announced; an error carries one of the statuses the admin port answers and a reason.
// Dictionary: http_request.dict
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "http/request_parser.h"
#include "test/fuzz/fuzz_check.h"

namespace {

struct Outcome {
  http::RequestParser::State state;
  size_t used;  // bytes of the connection this request took
  int error_status;
  std::string error;
  http::IncomingRequest request;
};

bool same(const http::IncomingRequest& a, const http::IncomingRequest& b) {
  return a.method == b.method && a.target == b.target && a.headers == b.headers && a.keep_alive == b.keep_alive &&
         a.http_1_0 == b.http_1_0;
}

// Every request of `input` (and the last one's error or incompleteness), the bytes arriving in the
// pieces input[0, cut) and input[cut, end).
std::vector<Outcome> parse_all(std::string_view input, size_t cut, const http::RequestLimits& limits) {
  std::vector<Outcome> out;
  http::RequestParser p(limits);
  size_t at = 0;         // bytes consumed so far
  size_t began = 0;      // where the current request began
  size_t arrived = cut;  // bytes the connection has delivered so far
  for (int round = 0; round < 100000; ++round) {
    const size_t given = arrived - at;
    size_t used = 12345;
    http::RequestParser::State s = p.feed(input.substr(at, given), &used);
    FUZZ_CHECK(used <= given);
    at += used;
    if (s == http::RequestParser::State::kIncomplete) {
      FUZZ_CHECK(used == given);
      if (arrived < input.size()) {
        arrived = input.size();
        continue;
      }
      out.push_back({s, at - began, 0, {}, {}});
      return out;
    }
    // Calls after the end consume nothing and say the same.
    size_t again = 1;
    FUZZ_CHECK(p.feed(input.substr(at, arrived - at), &again) == s && again == 0);
    out.push_back({s, at - began, p.error_status(), p.error(), p.request()});
    if (s == http::RequestParser::State::kError) return out;
    began = at;
    p.reset();
    FUZZ_CHECK(!p.started() && p.state() == http::RequestParser::State::kIncomplete);
    if (at == input.size()) return out;
  }
  FUZZ_CHECK(false && "the parser made no progress");
  return out;
}

bool is_optional_whitespace(char c) { return c == ' ' || c == '\t'; }

void check_request(std::string_view head, const http::IncomingRequest& r, const http::RequestLimits& limits) {
  FUZZ_CHECK(r.method == "GET" || r.method == "HEAD");
  FUZZ_CHECK(head.size() <= limits.max_head_bytes);
  FUZZ_CHECK(!head.empty() && head.back() == '\n');
  FUZZ_CHECK(!r.target.empty());
  FUZZ_CHECK(head.find(r.target) != std::string_view::npos);
  FUZZ_CHECK(r.path().size() <= r.target.size() && r.path().find('?') == std::string_view::npos);
  FUZZ_CHECK(r.headers.size() <= limits.max_headers);
  for (const auto& [name, value] : r.headers) {
    FUZZ_CHECK(!name.empty());  // a field name is a token (RFC 9110 5.1)
    for (char c : name) FUZZ_CHECK(!(c >= 'A' && c <= 'Z'));
    if (!value.empty()) {
      FUZZ_CHECK(!is_optional_whitespace(value.front()));
      FUZZ_CHECK(!is_optional_whitespace(value.back()));
    }
    if (name == "content-length") {
      FUZZ_CHECK(value.find_first_not_of('0') == std::string::npos);  // no body
    }
    // Any Transfer-Encoding announces a body (RFC 9112 6.3), chunked or not.
    FUZZ_CHECK(name != "transfer-encoding");
  }
  if (!r.headers.empty()) FUZZ_CHECK(r.header(r.headers.front().first) == &r.headers.front().second);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  // The first byte: the cut point; the second: the limits (the admin port's, or small ones that the
  // fuzzer can reach).
  http::RequestLimits limits;
  if (data[1] & 0x80) {
    limits.max_head_bytes = 16 + (data[1] & 0x7f) * 4;
    limits.max_headers = 1 + (data[1] & 7);
  }
  const std::string input(reinterpret_cast<const char*>(data + 2), size - 2);
  const size_t cut = data[0] % (input.size() + 1);

  const std::vector<Outcome> whole = parse_all(input, input.size(), limits);
  const std::vector<Outcome> split = parse_all(input, cut, limits);
  FUZZ_CHECK(whole.size() == split.size());
  size_t at = 0;
  for (size_t i = 0; i < whole.size(); ++i) {
    const Outcome& a = whole[i];
    const Outcome& b = split[i];
    FUZZ_CHECK(a.state == b.state);
    // Not for errors: an error consumes nothing of the call that found it, so what it took depends on
    // the pieces, and so may which error comes first (llhttp hands over a header name at the end of a
    // piece, so a field over the count can be seen before the bad byte that ends the name).
    if (a.state != http::RequestParser::State::kError) FUZZ_CHECK(a.used == b.used);
    if (a.state == http::RequestParser::State::kComplete) {
      FUZZ_CHECK(same(a.request, b.request));
      check_request(std::string_view(input).substr(at, a.used), a.request, limits);
    } else if (a.state == http::RequestParser::State::kError) {
      for (const Outcome* o : {&a, &b}) {
        FUZZ_CHECK(o->error_status == 400 || o->error_status == 405 || o->error_status == 413 ||
                   o->error_status == 431 || o->error_status == 505);
        FUZZ_CHECK(!o->error.empty());
      }
    } else {
      FUZZ_CHECK(i + 1 == whole.size());
      FUZZ_CHECK(at + a.used == input.size());
      // An unfinished head is never longer than the bound (it would have been refused).
      FUZZ_CHECK(a.used <= limits.max_head_bytes);
    }
    at += a.used;
  }
  return 0;
}
