// Host text as people write it: an IPv6 literal may come bracketed ("[::1]", as in URLs and in
// HOST:PORT targets), and the resolver wants it bare. Header-only, so that the stand-alone tools
// (herd-cli, herd-churn) share it without linking the library.
#pragma once

#include <string_view>

namespace reactor {

// "[::1]" -> "::1"; anything else as it is.
inline std::string_view unbracket_host(std::string_view host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') return host.substr(1, host.size() - 2);
  return host;
}

}  // namespace reactor
