// Fuzz harness: the admin routes' handling of request text (herd/admin_text.h): percent-decoding of a
// client ID, the `token` query parameter of /v1/dashboard, the Bearer credentials of Authorization,
// and JSON strings of any bytes (client IDs in /v1/clients and the dashboard). Properties, each
// against a plain model written here: percent_decode succeeds exactly when every '%' starts a
// two-hex-digit escape, and decodes what encoding every byte gives back; query_parameter returns
// the first parameter of that name, decoded, as a direct reading of the query does, and finds a
// token appended after any other parameters; bearer_credentials accepts exactly "bearer" (any case),
// spaces and a non-empty rest, and returns that rest; append_json_string writes one JSON string
// that a strict reader decodes back to the input with each byte outside well-formed UTF-8 as U+FFFD.
// Dictionary: http_request.dict
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "herd/admin_text.h"
#include "test/fuzz/fuzz_check.h"

namespace {

bool is_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

std::string encode_all(std::string_view s) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    out.push_back('%');
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

// The model of the query: split on '&', key and value at the first '='; the first parameter with an
// '=' whose key decodes to `name` decides.
bool model_query(std::string_view target, std::string_view name, bool* found, std::string* value) {
  *found = false;
  const size_t mark = target.find('?');
  if (mark == std::string_view::npos) return false;
  std::string query(target.substr(mark + 1));
  std::vector<std::string> params;
  std::string cur;
  for (char c : query) {
    if (c == '&') {
      params.push_back(cur);
      cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  params.push_back(cur);
  for (const std::string& p : params) {
    const size_t eq = p.find('=');
    if (eq == std::string::npos) continue;
    std::string key;
    if (!herd::percent_decode(p.substr(0, eq), &key) || key != name) continue;
    *found = true;
    return herd::percent_decode(p.substr(eq + 1), value);
  }
  return false;
}

// Appends code point `cp` as UTF-8.
void put_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xc0 | cp >> 6));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xe0 | cp >> 12));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else {
    out.push_back(static_cast<char>(0xf0 | cp >> 18));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  }
}

// The code point of a well-formed UTF-8 sequence of n bytes at s (by decoding, then range checks:
// no overlong form, no surrogate, nothing past U+10FFFF), or -1.
int64_t decode_utf8(std::string_view s, size_t n) {
  if (s.size() < n) return -1;
  const auto b0 = static_cast<unsigned char>(s[0]);
  uint32_t cp;
  if (n == 1) return b0 < 0x80 ? b0 : -1;
  if (n == 2 && (b0 & 0xe0) == 0xc0) cp = b0 & 0x1f;
  else if (n == 3 && (b0 & 0xf0) == 0xe0) cp = b0 & 0x0f;
  else if (n == 4 && (b0 & 0xf8) == 0xf0) cp = b0 & 0x07;
  else return -1;
  for (size_t k = 1; k < n; ++k) {
    const auto b = static_cast<unsigned char>(s[k]);
    if ((b & 0xc0) != 0x80) return -1;
    cp = cp << 6 | (b & 0x3f);
  }
  const uint32_t min = n == 2 ? 0x80 : n == 3 ? 0x800 : 0x10000;
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return -1;
  return cp;
}

// What the JSON string of `s` must decode to: the input, each byte that starts no well-formed
// sequence replaced by U+FFFD.
std::string expected_text(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    size_t n = 0;
    for (size_t len = 1; len <= 4 && n == 0; ++len) {
      if (decode_utf8(s.substr(i), len) >= 0) n = len;
    }
    if (n > 0) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      put_utf8(out, 0xfffd);
      ++i;
    }
  }
  return out;
}

// A strict reader of one JSON string (RFC 8259): the whole of `json`, no raw control bytes, only the
// defined escapes, well-formed UTF-8. False when it is not one.
bool read_json_string(std::string_view json, std::string* out) {
  if (json.size() < 2 || json.front() != '"' || json.back() != '"') return false;
  for (size_t i = 1; i + 1 < json.size();) {
    const auto c = static_cast<unsigned char>(json[i]);
    if (c == '"' || c < 0x20) return false;
    if (c == '\\') {
      if (i + 2 >= json.size()) return false;
      const char e = json[i + 1];
      const char* simple = "\"\\/bfnrt";
      const char* to = "\"\\/\b\f\n\r\t";
      bool done = false;
      for (int k = 0; simple[k]; ++k) {
        if (e == simple[k]) {
          out->push_back(to[k]);
          i += 2;
          done = true;
        }
      }
      if (done) continue;
      if (e != 'u' || i + 6 >= json.size()) return false;
      uint32_t cp = 0;
      for (size_t k = 2; k < 6; ++k) {
        const char h = json[i + k];
        if (!is_hex(h)) return false;
        cp = cp * 16 + static_cast<uint32_t>(h <= '9' ? h - '0' : (h | 0x20) - 'a' + 10);
      }
      if (cp >= 0xd800 && cp <= 0xdfff) return false;  // never written alone
      put_utf8(*out, cp);
      i += 6;
      continue;
    }
    size_t n = 0;
    for (size_t len = 1; len <= 4 && n == 0; ++len) {
      if (decode_utf8(json.substr(i, json.size() - 1 - i), len) >= 0) n = len;
    }
    if (n == 0) return false;
    out->append(json.substr(i, n));
    i += n;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);

  // Percent-decoding.
  std::string decoded;
  bool ok = herd::percent_decode(input, &decoded);
  bool well_formed = true;
  size_t escapes = 0;
  for (size_t i = 0; i < input.size(); ++i) {
    if (input[i] != '%') continue;
    if (i + 2 >= input.size()) {
      well_formed = false;
      break;
    }
    if (!is_hex(input[i + 1]) || !is_hex(input[i + 2])) {
      well_formed = false;
      break;
    }
    ++escapes;
    i += 2;
  }
  FUZZ_CHECK(ok == well_formed);
  if (ok) FUZZ_CHECK(decoded.size() == input.size() - 2 * escapes);
  std::string back;
  FUZZ_CHECK(herd::percent_decode(encode_all(input), &back) && back == input);

  // The token query parameter, and a token appended after whatever the input's query holds.
  std::string value, model_value;
  bool found = false;
  ok = herd::query_parameter(input, "token", &value);
  FUZZ_CHECK(ok == model_query(input, "token", &found, &model_value));
  if (ok) FUZZ_CHECK(value == model_value);
  if (!found && input.find('?') != std::string::npos) {
    const std::string secret = input.substr(0, 40);
    FUZZ_CHECK(herd::query_parameter(input + "&token=" + encode_all(secret), "token", &value));
    FUZZ_CHECK(value == secret);
  }
  if (input.find('?') == std::string::npos) FUZZ_CHECK(!ok);

  // Bearer credentials.
  std::string_view creds;
  ok = herd::bearer_credentials(input, &creds);
  std::string lower = input.substr(0, 7);
  for (char& c : lower) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
  const size_t rest = input.find_first_not_of(' ', 6);
  const bool model = lower == "bearer " && rest != std::string::npos;
  FUZZ_CHECK(ok == model);
  if (ok) {
    FUZZ_CHECK(creds == std::string_view(input).substr(rest));
    FUZZ_CHECK(!creds.empty() && creds.front() != ' ');
    FUZZ_CHECK(herd::same_secret(creds, creds));
    FUZZ_CHECK(!herd::same_secret(creds, std::string(creds) + "x"));
  }
  FUZZ_CHECK(!herd::same_secret(input, ""));

  // JSON strings.
  std::string json = "[";  // appends: what is there stays
  herd::append_json_string(json, input);
  FUZZ_CHECK(json[0] == '[');
  std::string text;
  FUZZ_CHECK(read_json_string(std::string_view(json).substr(1), &text));
  FUZZ_CHECK(text == expected_text(input));
  for (size_t i = 0; i < input.size() && i < 64; ++i) {
    const size_t n = herd::utf8_sequence_length(std::string_view(input).substr(i));
    FUZZ_CHECK(n <= 4);
    if (n > 0) FUZZ_CHECK(decode_utf8(std::string_view(input).substr(i), n) >= 0);
    else for (size_t len = 1; len <= 4; ++len) FUZZ_CHECK(decode_utf8(std::string_view(input).substr(i), len) < 0);
  }
  return 0;
}
