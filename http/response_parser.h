// ResponseParser: one HTTP/1.1 response parsed incrementally with llhttp, within bounds: header
// bytes, header count, body bytes (after decompression). Bodies framed by Content-Length, by
// chunked transfer coding, or by the end of the connection; `Content-Encoding: gzip` is decoded.
// Interim 1xx responses are skipped; 1xx, 204 and 304 end at their blank line whatever their framing
// headers say (they never have a body). Bytes after the end of the response are left unconsumed, so
// the owner can tell a clean keep-alive connection from one that sent more than it announced.
//
// Not thread-safe: one parser per response, on one thread.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include <llhttp.h>

#include "http/gzip_decoder.h"
#include "http/message.h"

namespace http {

struct ParserLimits {
  size_t max_header_bytes = 64 * 1024;      // status line and header section together
  size_t max_headers = 128;                 // header fields
  size_t max_body_bytes = 4 * 1024 * 1024;  // the body as delivered (decompressed)
};

class ResponseParser {
 public:
  enum class State { kIncomplete, kComplete, kError };

  explicit ResponseParser(ParserLimits limits = {});
  ResponseParser(const ResponseParser&) = delete;
  ResponseParser& operator=(const ResponseParser&) = delete;

  // Parses the next bytes. Returns the state after them; *consumed says how many were used (all of
  // them unless the response completed inside `data`; on an error the count is meaningless).
  // Calls after kComplete or kError consume nothing and return the same state.
  State feed(std::string_view data, size_t* consumed);
  // The connection ended (EOF): completes a body delimited by the close; any other unfinished
  // response becomes kError.
  State finish();

  State state() const { return state_; }
  // Any byte of a response has been seen.
  bool started() const { return started_; }
  // After kComplete: the connection may carry another request (HTTP/1.1 without `Connection:
  // close`, and a body not delimited by the close).
  bool keep_alive() const { return keep_alive_; }
  // After kError: what was wrong, e.g. "invalid chunk size" or "header section over 65536 bytes".
  const std::string& error() const { return error_; }
  Response& response() { return response_; }

 private:
  static int on_message_begin(llhttp_t* p);
  static int on_status(llhttp_t* p, const char* at, size_t n);
  static int on_header_field(llhttp_t* p, const char* at, size_t n);
  static int on_header_value(llhttp_t* p, const char* at, size_t n);
  static int on_headers_complete(llhttp_t* p);
  static int on_chunk_header(llhttp_t* p);
  static int on_body(llhttp_t* p, const char* at, size_t n);
  static int on_message_complete(llhttp_t* p);
  static const llhttp_settings_t& settings();

  int fail(std::string why);  // records the error; returns the llhttp code that stops parsing
  bool count_header_bytes(size_t n);

  ParserLimits limits_;
  llhttp_t parser_{};
  State state_ = State::kIncomplete;
  std::string error_;
  Response response_;
  std::unique_ptr<GzipDecoder> gzip_;
  size_t header_bytes_ = 0;
  size_t raw_body_bytes_ = 0;  // body bytes as received (before gzip decoding)
  bool in_value_ = false;  // the last header callback was for a value
  bool started_ = false;
  bool keep_alive_ = false;
  bool complete_ = false;  // on_message_complete ran for a final (non-1xx) response
};

}  // namespace http
