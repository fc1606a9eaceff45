// The admin endpoint's pure text handling (percent-decoding, query parameters, bearer credentials,
// JSON strings): no server state, so the fuzz harnesses take it without one.
#include "herd/admin_text.h"

#include <strings.h>

namespace herd {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

bool same_secret(std::string_view a, std::string_view b) {
  if (a.size() != b.size() || b.empty()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

bool percent_decode(std::string_view in, std::string* out) {
  out->clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out->push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size()) return false;
    int hi = hex_value(in[i + 1]), lo = hex_value(in[i + 2]);
    if (hi < 0 || lo < 0) return false;
    out->push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return true;
}

bool query_parameter(std::string_view target, std::string_view name, std::string* value) {
  const size_t mark = target.find('?');
  if (mark == std::string_view::npos) return false;
  std::string_view rest = target.substr(mark + 1);
  std::string key;
  for (;;) {
    const size_t amp = rest.find('&');
    const std::string_view param = rest.substr(0, amp);
    const size_t eq = param.find('=');
    if (eq != std::string_view::npos && percent_decode(param.substr(0, eq), &key) && key == name) {
      return percent_decode(param.substr(eq + 1), value);
    }
    if (amp == std::string_view::npos) return false;
    rest = rest.substr(amp + 1);
  }
}

size_t utf8_sequence_length(std::string_view s) {
  if (s.empty()) return 0;
  const auto b0 = static_cast<unsigned char>(s[0]);
  if (b0 < 0x80) return 1;
  // The second byte's range depends on the first (no overlong forms, no surrogates, nothing past
  // U+10FFFF); the later ones are 80..BF.
  size_t n;
  unsigned char lo = 0x80, hi = 0xbf;
  if (b0 >= 0xc2 && b0 <= 0xdf) {
    n = 2;
  } else if (b0 >= 0xe0 && b0 <= 0xef) {
    n = 3;
    if (b0 == 0xe0) lo = 0xa0;
    if (b0 == 0xed) hi = 0x9f;
  } else if (b0 >= 0xf0 && b0 <= 0xf4) {
    n = 4;
    if (b0 == 0xf0) lo = 0x90;
    if (b0 == 0xf4) hi = 0x8f;
  } else {
    return 0;
  }
  if (s.size() < n) return 0;
  const auto b1 = static_cast<unsigned char>(s[1]);
  if (b1 < lo || b1 > hi) return 0;
  for (size_t k = 2; k < n; ++k) {
    const auto b = static_cast<unsigned char>(s[k]);
    if (b < 0x80 || b > 0xbf) return 0;
  }
  return n;
}

void append_json_string(std::string& out, std::string_view s) {
  static const char kHex[] = "0123456789abcdef";
  out.push_back('"');
  for (size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(s[i++]);
    } else if (c < 0x20 || c == 0x7f) {
      out.append("\\u00");
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
      ++i;
    } else if (c < 0x80) {
      out.push_back(s[i++]);
    } else if (const size_t n = utf8_sequence_length(s.substr(i)); n > 0) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      out.append("\\ufffd");
      ++i;
    }
  }
  out.push_back('"');
}

bool bearer_credentials(std::string_view authorization, std::string_view* credentials) {
  // `Bearer <token>`: the scheme's case does not matter, and one or more spaces follow it (RFC 7235).
  const size_t space = authorization.find(' ');
  const std::string_view scheme = authorization.substr(0, space);
  const size_t begin =
      space == std::string_view::npos ? authorization.size() : authorization.find_first_not_of(' ', space);
  if (scheme.size() != 6 || ::strncasecmp(scheme.data(), "bearer", 6) != 0 || begin >= authorization.size()) {
    return false;
  }
  *credentials = authorization.substr(begin);
  return true;
}

}  // namespace herd
