// Url: the base URL of an upstream HTTP service (`https://maps.googleapis.com`,
// `http://127.0.0.1:8443/prefix`), parsed and checked once, at configuration time.
//
// Pure values and functions; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace http {

struct Url {
  std::string scheme;     // "http" or "https" (lower case)
  std::string host;       // a DNS name or an IP literal (an IPv6 literal without its brackets)
  uint16_t port = 0;      // explicit, or 80 / 443 by scheme
  std::string base_path;  // path prefix without a trailing '/': "" or "/prefix"

  bool tls() const { return scheme == "https"; }
  // The Host header value: host, bracketed when IPv6, with ":port" unless the scheme's default.
  std::string authority() const;
  // "scheme://authority", for messages.
  std::string origin() const;
};

// Parses `scheme://host[:port][/path]` where scheme is http or https. A user part, a query, a
// fragment, an empty host or a port outside 1..65535 are refused: nullopt with *error saying why.
std::optional<Url> parse_url(std::string_view text, std::string* error);

// Percent-encodes everything but RFC 3986's unreserved characters (A-Z a-z 0-9 - . _ ~).
std::string url_encode(std::string_view s);

}  // namespace http
