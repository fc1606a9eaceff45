// The HTTP/1.1 messages the client exchanges: a Request to send and the Response parsed back.
//
// Plain values; thread-safe as values are.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace http {

struct Header {
  std::string name;
  std::string value;
};

// Case-insensitive ASCII comparison of header names.
bool same_name(std::string_view a, std::string_view b);

struct Request {
  std::string method = "GET";    // "GET", "POST", ...
  std::string target = "/";      // origin-form: path and query, starting with '/'
  std::vector<Header> headers;   // the caller's own (the client adds Host, Content-Length, ...)
  std::string body;              // sent with a Content-Length when non-empty or when POST
};

struct Response {
  int status = 0;                // 200, 404, ...
  std::vector<Header> headers;   // as received, in order
  std::string body;              // decoded: chunking and gzip removed

  // The first header named `name` (case-insensitive), or nullptr.
  const std::string* header(std::string_view name) const;
};

// The request's bytes on the wire: request line, `Host: authority`, the caller's headers,
// `Accept-Encoding: gzip` when `gzip`, `Content-Length` when there is a body (or the method is
// POST/PUT), a blank line, the body. Header names and values must not contain CR or LF (the
// caller's are checked by the client before this is called).
std::string serialize(const Request& request, std::string_view authority, bool gzip);

}  // namespace http
