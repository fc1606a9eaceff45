// Google's legacy JSON layout (JsonCpp "styled" writer rules from PLACES.md) over RapidJSON values.
#include "places/google_json.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <vector>

namespace places {

namespace {

// JsonCpp's right margin: the one-line array limits are measured against it.
constexpr size_t kRightMargin = 74;
constexpr size_t kIndentWidth = 3;

void append_indent(std::string& out, size_t depth) { out.append(depth * kIndentWidth, ' '); }

bool is_nonempty_container(const rapidjson::Value& v) {
  return (v.IsArray() && !v.Empty()) || (v.IsObject() && v.MemberCount() > 0);
}

std::string_view key_of(const rapidjson::Value::ConstMemberIterator& m) {
  return std::string_view(m->name.GetString(), m->name.GetStringLength());
}

void write_value(std::string& out, const rapidjson::Value& v, size_t depth);

void write_object(std::string& out, const rapidjson::Value& v, size_t depth) {
  if (v.MemberCount() == 0) {
    out += "{}";
    return;
  }
  // Members in lexicographic key order; the common already-sorted case needs no copy.
  bool sorted = true;
  for (auto m = v.MemberBegin(); m + 1 != v.MemberEnd(); ++m) {
    if (key_of(m + 1) < key_of(m)) {
      sorted = false;
      break;
    }
  }
  std::vector<rapidjson::Value::ConstMemberIterator> order;
  if (!sorted) {
    order.reserve(v.MemberCount());
    for (auto m = v.MemberBegin(); m != v.MemberEnd(); ++m) order.push_back(m);
    std::stable_sort(order.begin(), order.end(),
                     [](const auto& a, const auto& b) { return key_of(a) < key_of(b); });
  }
  out += '{';
  size_t count = v.MemberCount();
  for (size_t i = 0; i < count; ++i) {
    auto m = sorted ? v.MemberBegin() + static_cast<rapidjson::SizeType>(i) : order[i];
    if (i > 0) out += ',';
    out += '\n';
    append_indent(out, depth + 1);
    append_google_string(out, key_of(m));
    out += " : ";
    write_value(out, m->value, depth + 1);
  }
  out += '\n';
  append_indent(out, depth);
  out += '}';
}

void write_array(std::string& out, const rapidjson::Value& v, size_t depth) {
  size_t size = v.Size();
  if (size == 0) {
    out += "[]";
    return;
  }
  // One line when no element is a non-empty container, size × 3 < 74, and the line
  // "[ " + elements joined by ", " + " ]" is shorter than 74 bytes.
  bool one_line = size * 3 < kRightMargin;
  for (size_t i = 0; one_line && i < size; ++i) {
    if (is_nonempty_container(v[static_cast<rapidjson::SizeType>(i)])) one_line = false;
  }
  if (one_line) {
    size_t start = out.size();
    out += "[ ";
    for (size_t i = 0; i < size; ++i) {
      if (i > 0) out += ", ";
      write_value(out, v[static_cast<rapidjson::SizeType>(i)], depth + 1);
    }
    out += " ]";
    if (out.size() - start < kRightMargin) return;
    out.resize(start);  // too long: fall back to one element per line
  }
  out += '[';
  for (size_t i = 0; i < size; ++i) {
    if (i > 0) out += ',';
    out += '\n';
    append_indent(out, depth + 1);
    write_value(out, v[static_cast<rapidjson::SizeType>(i)], depth + 1);
  }
  out += '\n';
  append_indent(out, depth);
  out += ']';
}

template <typename Int>
void append_integer(std::string& out, Int n) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, n);
  out.append(buf, r.ptr);
}

void write_value(std::string& out, const rapidjson::Value& v, size_t depth) {
  switch (v.GetType()) {
    case rapidjson::kNullType: out += "null"; break;
    case rapidjson::kFalseType: out += "false"; break;
    case rapidjson::kTrueType: out += "true"; break;
    case rapidjson::kStringType:
      append_google_string(out, std::string_view(v.GetString(), v.GetStringLength()));
      break;
    case rapidjson::kNumberType:
      if (v.IsDouble()) {
        append_google_double(out, v.GetDouble());
      } else if (v.IsUint64()) {
        append_integer(out, v.GetUint64());
      } else {
        append_integer(out, v.GetInt64());
      }
      break;
    case rapidjson::kObjectType: write_object(out, v, depth); break;
    case rapidjson::kArrayType: write_array(out, v, depth); break;
  }
}

}  // namespace

void append_google_string(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  size_t run = 0;  // start of the pending run of bytes that need no escaping
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    const char* esc = nullptr;
    char unicode[7];
    switch (c) {
      case '"': esc = "\\\""; break;
      case '\\': esc = "\\\\"; break;
      case '\b': esc = "\\b"; break;
      case '\f': esc = "\\f"; break;
      case '\n': esc = "\\n"; break;
      case '\r': esc = "\\r"; break;
      case '\t': esc = "\\t"; break;
      case '<': esc = "\\u003c"; break;
      case '>': esc = "\\u003e"; break;
      default:
        if (c < 0x20) {
          unicode[0] = '\\';
          unicode[1] = 'u';
          unicode[2] = '0';
          unicode[3] = '0';
          unicode[4] = kHex[c >> 4];
          unicode[5] = kHex[c & 0xf];
          unicode[6] = '\0';
          esc = unicode;
        }
        break;
    }
    if (esc) {
      out.append(s.data() + run, i - run);
      out += esc;
      run = i + 1;
    }
  }
  out.append(s.data() + run, s.size() - run);
  out += '"';
}

void append_google_double(std::string& out, double d) {
  if (!std::isfinite(d)) {
    out += "null";
    return;
  }
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::general, 16);
  out.append(buf, r.ptr);
}

void append_google_json(std::string& out, const rapidjson::Value& v) { write_value(out, v, 0); }

std::string google_json(const rapidjson::Value& v) {
  std::string out;
  append_google_json(out, v);
  return out;
}

}  // namespace places
