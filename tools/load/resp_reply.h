// RESP (redis protocol) reply parsing and checking (header-only): parse one complete value from
// a connection's input, then judge it as the answer to a GEOADD (":0"/":1") or to a GEOSEARCH
// (an array of at most COUNT member names).
#pragma once

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "tools/load/error_kind.h"

namespace herd_load {

struct RespValue {
  enum class Type { kSimple, kError, kInteger, kBulk, kNull, kArray };
  Type type = Type::kNull;
  std::string_view text;  // simple, error, bulk (points into the parsed buffer)
  int64_t integer = 0;
  std::vector<RespValue> elements;
};

enum class RespParse { kIncomplete, kComplete, kMalformed };

// Parses one value from buf at *pos (advanced past it when complete).
inline RespParse parse_resp(std::string_view buf, size_t* pos, RespValue* out, int depth = 0) {
  if (depth > 32) return RespParse::kMalformed;
  size_t p = *pos;
  size_t eol = buf.find("\r\n", p);
  if (eol == std::string_view::npos) return buf.size() - p > (64u << 20) ? RespParse::kMalformed : RespParse::kIncomplete;
  if (eol == p) return RespParse::kMalformed;
  char tag = buf[p];
  std::string_view head = buf.substr(p + 1, eol - p - 1);
  auto parse_int = [](std::string_view s, int64_t* v) {
    auto [q, ec] = std::from_chars(s.data(), s.data() + s.size(), *v);
    return ec == std::errc() && q == s.data() + s.size();
  };
  switch (tag) {
    case '+':
    case '-':
      out->type = tag == '+' ? RespValue::Type::kSimple : RespValue::Type::kError;
      out->text = head;
      *pos = eol + 2;
      return RespParse::kComplete;
    case ':':
      out->type = RespValue::Type::kInteger;
      if (!parse_int(head, &out->integer)) return RespParse::kMalformed;
      *pos = eol + 2;
      return RespParse::kComplete;
    case '$': {
      int64_t n = 0;
      if (!parse_int(head, &n) || n < -1) return RespParse::kMalformed;
      if (n == -1) {
        out->type = RespValue::Type::kNull;
        *pos = eol + 2;
        return RespParse::kComplete;
      }
      size_t start = eol + 2;
      size_t len = static_cast<size_t>(n);
      if (buf.size() < start + len + 2) return RespParse::kIncomplete;
      if (buf.substr(start + len, 2) != "\r\n") return RespParse::kMalformed;
      out->type = RespValue::Type::kBulk;
      out->text = buf.substr(start, len);
      *pos = start + len + 2;
      return RespParse::kComplete;
    }
    case '*': {
      int64_t n = 0;
      if (!parse_int(head, &n) || n < -1 || n > (1 << 20)) return RespParse::kMalformed;
      if (n == -1) {
        out->type = RespValue::Type::kNull;
        *pos = eol + 2;
        return RespParse::kComplete;
      }
      out->type = RespValue::Type::kArray;
      out->elements.clear();
      out->elements.resize(static_cast<size_t>(n));
      size_t q = eol + 2;
      for (auto& e : out->elements) {
        RespParse r = parse_resp(buf, &q, &e, depth + 1);
        if (r != RespParse::kComplete) return r;
      }
      *pos = q;
      return RespParse::kComplete;
    }
    default:
      return RespParse::kMalformed;
  }
}

// GEOADD of one member answers :0 (updated) or :1 (added).
inline ErrorKind check_geoadd_reply(const RespValue& v) {
  if (v.type == RespValue::Type::kError) return ErrorKind::kRedisError;
  if (v.type != RespValue::Type::kInteger) return ErrorKind::kMalformed;
  return v.integer == 0 || v.integer == 1 ? ErrorKind::kNone : ErrorKind::kMismatch;
}

// GEOSEARCH ... COUNT n (no WITH* options) answers an array of at most n member names; the
// searched-from member is within any radius of itself, so the array is never empty.
inline ErrorKind check_geosearch_reply(const RespValue& v, size_t count, size_t* results) {
  if (v.type == RespValue::Type::kError) return ErrorKind::kRedisError;
  if (v.type != RespValue::Type::kArray) return ErrorKind::kMalformed;
  if (v.elements.empty() || v.elements.size() > count) return ErrorKind::kBadResults;
  for (const auto& e : v.elements)
    if (e.type != RespValue::Type::kBulk) return ErrorKind::kMalformed;
  *results = v.elements.size();
  return ErrorKind::kNone;
}

}  // namespace herd_load
