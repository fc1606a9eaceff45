// JSON validation for herd-load's WHATSAT check (header-only, so unit tests can use it): one pass
// over a reply's JSON that checks the whole text against RFC 8259's grammar and reads only what the
// check needs: the top object's "results" array (its element count) and "status" string.
//
// A 20-result Nearby Search reply is about 12 KB, two thirds of it indentation, keys and short
// numbers; on a shared machine every microsecond the generator spends on it is taken from the
// server it measures. So nothing is built and nothing is copied: whitespace and string bodies are
// skipped 16 bytes at a time, and only a key or status with an escape in it is decoded.
//
// The grammar is RapidJSON's default one (which the unit tests compare it with, and which the
// generator used before): no comments, trailing commas, NaN or Infinity; control bytes below 0x20
// must be escaped inside strings; a \u escape of a high surrogate must be followed by one of a low
// surrogate; bytes from 0x80 up are taken as they are (no UTF-8 validation). Numbers are checked
// as text, so their size is not limited. Nesting deeper than kMaxJsonDepth is refused.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace herd_load {

constexpr int kMaxJsonDepth = 512;

// What check_json_shape found.
struct JsonShape {
  enum class Seen { kAbsent, kWrongType, kPresent };
  bool valid = false;       // the whole text is one JSON value, with only whitespace around it
  size_t error_offset = 0;  // when not valid: where the scan stopped
  bool top_is_object = false;
  Seen results = Seen::kAbsent;  // the top object's first "results" member
  Seen status = Seen::kAbsent;   // the top object's first "status" member
  size_t result_count = 0;       // elements of that results array
  std::string status_text;       // that status string, unescaped
};

namespace json_detail {

class Scanner {
 public:
  explicit Scanner(std::string_view text) : begin_(text.data()), p_(text.data()), end_(text.data() + text.size()) {}

  bool run(JsonShape* shape) {
    skip_ws();
    bool ok;
    if (p_ < end_ && *p_ == '{') {
      shape->top_is_object = true;
      ok = top_object(shape);
    } else {
      ok = value(0);
    }
    if (ok) {
      skip_ws();
      ok = p_ == end_;
    }
    shape->valid = ok;
    shape->error_offset = ok ? 0 : static_cast<size_t>(p_ - begin_);
    return ok;
  }

 private:
  static bool is_ws(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }
  static bool is_digit(char c) { return c >= '0' && c <= '9'; }

  void skip_ws() {
#if defined(__SSE2__)
    while (end_ - p_ >= 16) {
      if (!is_ws(*p_)) return;
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p_));
      const __m128i ws = _mm_or_si128(
          _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8(' ')), _mm_cmpeq_epi8(v, _mm_set1_epi8('\n'))),
          _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('\t')), _mm_cmpeq_epi8(v, _mm_set1_epi8('\r'))));
      const auto other = static_cast<unsigned>(~_mm_movemask_epi8(ws)) & 0xffff;
      if (other) {
        p_ += __builtin_ctz(other);
        return;
      }
      p_ += 16;
    }
#endif
    while (p_ < end_ && is_ws(*p_)) ++p_;
  }

  // Four hex digits at p_ (advanced past them) into *v.
  bool hex4(unsigned* v) {
    if (end_ - p_ < 4) return false;
    unsigned r = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = *p_;
      unsigned d;
      if (c >= '0' && c <= '9') d = static_cast<unsigned>(c - '0');
      else if (c >= 'a' && c <= 'f') d = static_cast<unsigned>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') d = static_cast<unsigned>(c - 'A' + 10);
      else return false;
      r = r << 4 | d;
      ++p_;
    }
    *v = r;
    return true;
  }

  // One escape, p_ at its backslash.
  bool escape() {
    ++p_;
    if (p_ == end_) return false;
    switch (*p_++) {
      case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
        return true;
      case 'u': {
        unsigned cp = 0;
        if (!hex4(&cp)) return false;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          unsigned low = 0;
          if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u') return false;
          p_ += 2;
          return hex4(&low) && low >= 0xDC00 && low <= 0xDFFF;
        }
        return true;
      }
      default:
        return false;
    }
  }

  // A string, p_ at its opening quote; *body is what lies between the quotes (escapes as they
  // are) and *escaped says whether it holds any.
  bool string(std::string_view* body, bool* escaped) {
    const char* start = ++p_;
    *escaped = false;
    for (;;) {
#if defined(__SSE2__)
      while (end_ - p_ >= 16) {
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p_));
        const __m128i ctl = _mm_cmpeq_epi8(_mm_max_epu8(v, _mm_set1_epi8(0x1f)), _mm_set1_epi8(0x1f));
        const __m128i stop = _mm_or_si128(
            _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')), _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))), ctl);
        const auto m = static_cast<unsigned>(_mm_movemask_epi8(stop));
        if (m) {
          p_ += __builtin_ctz(m);
          break;
        }
        p_ += 16;
      }
#endif
      while (p_ < end_ && *p_ != '"' && *p_ != '\\' && static_cast<unsigned char>(*p_) >= 0x20) ++p_;
      if (p_ == end_ || static_cast<unsigned char>(*p_) < 0x20) return false;
      if (*p_ == '"') {
        *body = std::string_view(start, static_cast<size_t>(p_ - start));
        ++p_;
        return true;
      }
      *escaped = true;
      if (!escape()) return false;
    }
  }

  bool number() {
    if (*p_ == '-') ++p_;
    if (p_ == end_) return false;
    if (*p_ == '0') {
      ++p_;
    } else if (*p_ >= '1' && *p_ <= '9') {
      while (p_ < end_ && is_digit(*p_)) ++p_;
    } else {
      return false;
    }
    if (p_ < end_ && *p_ == '.') {
      ++p_;
      if (p_ == end_ || !is_digit(*p_)) return false;
      while (p_ < end_ && is_digit(*p_)) ++p_;
    }
    if (p_ < end_ && (*p_ == 'e' || *p_ == 'E')) {
      ++p_;
      if (p_ < end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      if (p_ == end_ || !is_digit(*p_)) return false;
      while (p_ < end_ && is_digit(*p_)) ++p_;
    }
    return true;
  }

  bool literal(std::string_view word) {
    if (static_cast<size_t>(end_ - p_) < word.size() || std::string_view(p_, word.size()) != word) return false;
    p_ += word.size();
    return true;
  }

  // Any value at p_ (whitespace before it already skipped), nested `depth` deep.
  bool value(int depth) {
    if (p_ == end_) return false;
    switch (*p_) {
      case '{': return object(depth + 1);
      case '[': return array(depth + 1, nullptr);
      case '"': {
        std::string_view body;
        bool escaped;
        return string(&body, &escaped);
      }
      case 't': return literal("true");
      case 'f': return literal("false");
      case 'n': return literal("null");
      default: return number();
    }
  }

  // The items of an array or object, p_ at its opening bracket: item() reads each (whitespace before
  // it skipped), separated by commas, up to `close`.
  template <class Item>
  bool items(int depth, char close, Item&& item) {
    if (depth > kMaxJsonDepth) return false;
    ++p_;
    skip_ws();
    if (p_ < end_ && *p_ == close) {
      ++p_;
      return true;
    }
    for (;;) {
      if (!item()) return false;
      skip_ws();
      if (p_ == end_) return false;
      if (*p_ == close) {
        ++p_;
        return true;
      }
      if (*p_ != ',') return false;
      ++p_;
      skip_ws();
    }
  }

  // An array, p_ at '['; counts its elements into *count when given.
  bool array(int depth, size_t* count) {
    return items(depth, ']', [&] {
      if (!value(depth)) return false;
      if (count) ++*count;
      return true;
    });
  }

  // The members of an object, p_ at '{': calls member(key body, key escaped) with p_ at each value.
  template <class Member>
  bool members(int depth, Member&& member) {
    return items(depth, '}', [&] {
      std::string_view key;
      bool escaped;
      if (p_ == end_ || *p_ != '"' || !string(&key, &escaped)) return false;
      skip_ws();
      if (p_ == end_ || *p_ != ':') return false;
      ++p_;
      skip_ws();
      return member(key, escaped);
    });
  }

  bool object(int depth) {
    return members(depth, [&](std::string_view, bool) { return value(depth); });
  }

  bool top_object(JsonShape* shape) {
    return members(1, [&](std::string_view raw_key, bool escaped) {
      const std::string key = escaped ? unescape(raw_key) : std::string();
      const std::string_view k = escaped ? std::string_view(key) : raw_key;
      if (k == "results" && shape->results == JsonShape::Seen::kAbsent) {
        if (p_ < end_ && *p_ == '[') {
          shape->results = JsonShape::Seen::kPresent;
          return array(2, &shape->result_count);
        }
        shape->results = JsonShape::Seen::kWrongType;
      } else if (k == "status" && shape->status == JsonShape::Seen::kAbsent) {
        if (p_ < end_ && *p_ == '"') {
          std::string_view body;
          bool body_escaped;
          if (!string(&body, &body_escaped)) return false;
          shape->status = JsonShape::Seen::kPresent;
          shape->status_text = body_escaped ? unescape(body) : std::string(body);
          return true;
        }
        shape->status = JsonShape::Seen::kWrongType;
      }
      return value(1);
    });
  }

  // The text of a string body already checked by string(), its escapes decoded (to UTF-8).
  static std::string unescape(std::string_view body) {
    std::string out;
    for (size_t i = 0; i < body.size(); ++i) {
      if (body[i] != '\\') {
        out += body[i];
        continue;
      }
      const char e = body[++i];
      switch (e) {
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          auto hex = [&](size_t at) {
            unsigned v = 0;
            for (size_t k = at; k < at + 4; ++k) {
              const char c = body[k];
              v = v << 4 | static_cast<unsigned>(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
            }
            return v;
          };
          unsigned cp = hex(i + 1);
          i += 4;
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (hex(i + 3) - 0xDC00);
            i += 6;
          }
          if (cp < 0x80) {
            out += static_cast<char>(cp);
          } else if (cp < 0x800) {
            out += static_cast<char>(0xC0 | cp >> 6);
            out += static_cast<char>(0x80 | (cp & 0x3F));
          } else if (cp < 0x10000) {
            out += static_cast<char>(0xE0 | cp >> 12);
            out += static_cast<char>(0x80 | (cp >> 6 & 0x3F));
            out += static_cast<char>(0x80 | (cp & 0x3F));
          } else {
            out += static_cast<char>(0xF0 | cp >> 18);
            out += static_cast<char>(0x80 | (cp >> 12 & 0x3F));
            out += static_cast<char>(0x80 | (cp >> 6 & 0x3F));
            out += static_cast<char>(0x80 | (cp & 0x3F));
          }
          break;
        }
        default: out += e; break;  // " \ /
      }
    }
    return out;
  }

  const char* begin_;
  const char* p_;
  const char* end_;
};

}  // namespace json_detail

// Checks `text` and reads its shape into *shape; returns shape->valid.
inline bool check_json_shape(std::string_view text, JsonShape* shape) {
  *shape = JsonShape{};
  return json_detail::Scanner(text).run(shape);
}

}  // namespace herd_load
