// Fuzz harness: the places client's HTTP/1.1 response parser (http/response_parser.h, llhttp with
// gzip decoding) on arbitrary bytes from an upstream, fed in two pieces as a connection would.
// Properties: it never consumes more than it is given; it ends complete or in error, never both;
// a complete response stays within the limits it was given (headers, body after decompression).
// Dictionary: http.dict
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "http/response_parser.h"
#include "test/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::string input(reinterpret_cast<const char*>(data + 1), size - 1);
  const size_t split = data[0] % (input.size() + 1);
  http::ParserLimits limits;
  limits.max_header_bytes = 2048;
  limits.max_headers = 16;
  limits.max_body_bytes = 64 * 1024;
  http::ResponseParser parser(limits);
  using State = http::ResponseParser::State;
  State state = State::kIncomplete;
  for (std::string_view piece : {std::string_view(input).substr(0, split), std::string_view(input).substr(split)}) {
    size_t consumed = 0;
    state = parser.feed(piece, &consumed);
    if (state != State::kError) FUZZ_CHECK(consumed <= piece.size());
    if (state != State::kIncomplete) break;
  }
  if (state == State::kIncomplete) state = parser.finish();
  FUZZ_CHECK(state == parser.state());
  if (state == State::kError) {
    FUZZ_CHECK(!parser.error().empty());
    return 0;
  }
  if (state == State::kComplete) {
    const http::Response& r = parser.response();
    FUZZ_CHECK(r.status >= 100 && r.status <= 999);
    FUZZ_CHECK(r.headers.size() <= limits.max_headers);
    FUZZ_CHECK(r.body.size() <= limits.max_body_bytes);
  }
  return 0;
}
