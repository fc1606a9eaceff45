// RequestParser: one HTTP/1.1 request head parsed incrementally with llhttp, for the small servers
// this project runs (the admin endpoint): GET and HEAD only, no request body, and bounds on the
// request line and header bytes and on the number of header fields. Stops after one request so that
// pipelined requests are answered one at a time, in order; reset() readies it for the next.
//
// Not thread-safe: one parser per connection, used on that connection's thread.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include <llhttp.h>

namespace http {

struct RequestLimits {
  size_t max_head_bytes = 8 * 1024;  // request line and header section together, the blank line included
  size_t max_headers = 64;           // header fields
};

// A parsed request head. Header names are lower-cased; values are as sent without the optional
// whitespace around them.
struct IncomingRequest {
  std::string method;  // "GET" or "HEAD"
  std::string target;  // the request target as sent, e.g. "/v1/clients/kiwi?x=1"
  std::vector<std::pair<std::string, std::string>> headers;
  bool keep_alive = true;
  bool http_1_0 = false;  // an HTTP/1.0 request: keep-alive must be said in the response to hold

  // The first value of header `lower_name`, or nullptr.
  const std::string* header(std::string_view lower_name) const;
  // The target without its query string.
  std::string_view path() const;
};

class RequestParser {
 public:
  enum class State { kIncomplete, kComplete, kError };

  explicit RequestParser(RequestLimits limits = {});
  RequestParser(const RequestParser&) = delete;
  RequestParser& operator=(const RequestParser&) = delete;

  // Parses the next bytes. *consumed says how many were used: all of them unless the request ended
  // inside `data` (the rest belongs to the next request). Calls after kComplete or kError consume
  // nothing and return the same state.
  State feed(std::string_view data, size_t* consumed);
  // Forgets the request and readies the parser for the next one on the same connection.
  void reset();

  State state() const { return state_; }
  // Any byte of a request has been seen (an idle keep-alive connection has seen none).
  bool started() const { return head_bytes_ > 0; }
  const IncomingRequest& request() const { return request_; }
  // After kError: the status to answer with (400, 405, 413, 431, 505) and a short reason.
  int error_status() const { return error_status_; }
  const std::string& error() const { return error_; }

 private:
  static int on_message_begin(llhttp_t* p);
  static int on_url(llhttp_t* p, const char* at, size_t n);
  static int on_header_field(llhttp_t* p, const char* at, size_t n);
  static int on_header_value(llhttp_t* p, const char* at, size_t n);
  static int on_header_value_complete(llhttp_t* p);
  static int on_headers_complete(llhttp_t* p);
  static int on_message_complete(llhttp_t* p);
  int fail(int status, std::string why);

  RequestLimits limits_;
  llhttp_settings_t settings_;
  llhttp_t parser_;
  State state_ = State::kIncomplete;
  IncomingRequest request_;
  size_t head_bytes_ = 0;  // bytes of the current request taken so far
  bool in_value_ = false;  // the last header callback was a value (a new field starts a new header)
  int error_status_ = 0;
  std::string error_;
};

}  // namespace http
