// Url parsing.
#include "http/url.h"

#include <arpa/inet.h>

namespace http {
namespace {

// ASCII only, whatever the C locale says.
bool is_alnum(unsigned char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool bad(std::string* error, std::string what) {
  *error = std::move(what);
  return false;
}

bool valid_host_char(char c) {
  return is_alnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_';
}

bool parse_port(std::string_view digits, uint16_t* port, std::string* error) {
  if (digits.empty() || digits.size() > 5) return bad(error, "the port must be a number from 1 to 65535");
  unsigned v = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return bad(error, "the port must be a number from 1 to 65535");
    v = v * 10 + static_cast<unsigned>(c - '0');
  }
  if (v == 0 || v > 65535) return bad(error, "the port must be a number from 1 to 65535");
  *port = static_cast<uint16_t>(v);
  return true;
}

}  // namespace

std::string Url::authority() const {
  std::string out = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  uint16_t dflt = tls() ? 443 : 80;
  if (port != dflt) out += ":" + std::to_string(port);
  return out;
}

std::string Url::origin() const { return scheme + "://" + authority(); }

std::optional<Url> parse_url(std::string_view text, std::string* error) {
  Url url;
  size_t sep = text.find("://");
  if (sep == std::string_view::npos) {
    bad(error, "expected a URL like https://host[:port][/path]");
    return std::nullopt;
  }
  for (char c : text.substr(0, sep)) url.scheme.push_back(lower(c));
  if (url.scheme != "http" && url.scheme != "https") {
    bad(error, "the scheme must be http or https");
    return std::nullopt;
  }
  std::string_view rest = text.substr(sep + 3);
  if (rest.find_first_of("?#") != std::string_view::npos) {
    bad(error, "a base URL has no query or fragment");
    return std::nullopt;
  }
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
  if (authority.find('@') != std::string_view::npos) {
    bad(error, "a user name or password does not belong in the URL");
    return std::nullopt;
  }
  std::string_view port_text;
  if (!authority.empty() && authority.front() == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      bad(error, "an IPv6 address needs its closing ']'");
      return std::nullopt;
    }
    url.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        bad(error, "unexpected text after the IPv6 address");
        return std::nullopt;
      }
      port_text = after.substr(1);
      if (port_text.empty()) port_text = "x";  // "[::1]:" has an empty port: refused below
    }
    in6_addr a6;
    if (::inet_pton(AF_INET6, url.host.c_str(), &a6) != 1) {
      bad(error, "'" + url.host + "' is not an IPv6 address");
      return std::nullopt;
    }
  } else {
    size_t colon = authority.find(':');
    url.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port_text = authority.substr(colon + 1);
      if (port_text.empty()) port_text = "x";
    }
    for (char& c : url.host) {
      if (!valid_host_char(c)) {
        bad(error, "the host name has a character that is not allowed");
        return std::nullopt;
      }
      c = lower(c);
    }
  }
  if (url.host.empty()) {
    bad(error, "the URL has no host");
    return std::nullopt;
  }
  url.port = url.tls() ? 443 : 80;
  if (!port_text.empty() && !parse_port(port_text, &url.port, error)) return std::nullopt;
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  for (char c : path) {
    if (static_cast<unsigned char>(c) <= ' ' || static_cast<unsigned char>(c) >= 0x7f) {
      bad(error, "the path has a space or a byte that must be percent-encoded");
      return std::nullopt;
    }
  }
  url.base_path = std::string(path);
  return url;
}

std::string url_encode(std::string_view s) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

}  // namespace http
