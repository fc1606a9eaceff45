// Argument parsing helpers for herd-load (header-only, unit-tested in test/unit/test_load.cc):
// durations with units ("30s", "500ms", "2m"; a bare number is seconds) and HOST:PORT targets,
// IPv6 literals in brackets ("[::1]:12000"). Pure functions: they return an error message instead
// of exiting, so any thread may call them.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

namespace herd_load {

// Parses a duration: a non-negative decimal number, optionally followed by a unit: "ms"
// (milliseconds), "s" (seconds), "m" (minutes) or "h" (hours). A bare number keeps its old meaning
// (seconds). On success sets *seconds and returns ""; else returns the reason.
inline std::string parse_duration(std::string_view text, double* seconds) {
  if (text.empty()) return "an empty duration";
  size_t unit_at = text.size();
  while (unit_at > 0 && std::isalpha(static_cast<unsigned char>(text[unit_at - 1]))) --unit_at;
  std::string number(text.substr(0, unit_at));
  std::string_view unit = text.substr(unit_at);
  if (number.empty()) return "no number in \"" + std::string(text) + "\"";
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(number.c_str(), &end);
  if (end != number.c_str() + number.size() || errno != 0 || !std::isfinite(v) || v < 0)
    return "\"" + std::string(text) + "\" is not a non-negative number with an optional unit";
  double scale = 0;
  if (unit.empty() || unit == "s") scale = 1;
  else if (unit == "ms") scale = 1e-3;
  else if (unit == "m") scale = 60;
  else if (unit == "h") scale = 3600;
  else
    return "unknown unit \"" + std::string(unit) + "\" in \"" + std::string(text) +
           "\" (use ms, s, m or h, or a bare number of seconds)";
  *seconds = v * scale;
  return "";
}

// A resolved numeric address (IPv4 or IPv6) for connect().
struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;
  int family = AF_UNSPEC;
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
};

// Fills *out from a numeric host ("127.0.0.1", "::1"; "localhost" is taken as 127.0.0.1) and a
// port. Returns false when the host is not an IPv4 or IPv6 literal.
inline bool make_address(const std::string& host, int port, SocketAddress* out) {
  const std::string h = host == "localhost" ? "127.0.0.1" : host;
  *out = SocketAddress{};
  auto* v4 = reinterpret_cast<sockaddr_in*>(&out->storage);
  if (inet_pton(AF_INET, h.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    out->length = sizeof(sockaddr_in);
    out->family = AF_INET;
    return true;
  }
  *out = SocketAddress{};
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&out->storage);
  if (inet_pton(AF_INET6, h.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    out->length = sizeof(sockaddr_in6);
    out->family = AF_INET6;
    return true;
  }
  return false;
}

// Splits "HOST:PORT" or "[IPV6]:PORT" into *host (without brackets) and *port (1..65535).
// Returns "" or the reason it is not one.
inline std::string parse_host_port(std::string_view text, std::string* host, int* port) {
  std::string_view h, p;
  if (!text.empty() && text[0] == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos) return "no closing \"]\" in \"" + std::string(text) + "\"";
    h = text.substr(1, close - 1);
    if (close + 1 >= text.size() || text[close + 1] != ':')
      return "\"" + std::string(text) + "\" needs [HOST]:PORT";
    p = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return "\"" + std::string(text) + "\" needs HOST:PORT";
    h = text.substr(0, colon);
    if (h.find(':') != std::string_view::npos)
      return "\"" + std::string(text) + "\": write an IPv6 address in brackets, as [::1]:PORT";
    p = text.substr(colon + 1);
  }
  if (h.empty()) return "no host in \"" + std::string(text) + "\"";
  int v = 0;
  auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), v);
  if (p.empty() || ec != std::errc() || end != p.data() + p.size() || v < 1 || v > 65535)
    return "the port of \"" + std::string(text) + "\" must be a number in 1..65535";
  *host = std::string(h);
  *port = v;
  return "";
}

}  // namespace herd_load
