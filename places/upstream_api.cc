// Helpers shared by the two Nearby Search flavours.
#include "places/upstream_api.h"

#include <algorithm>
#include <charconv>
#include <utility>
#include <vector>

namespace places {

const char* legacy_status_for_http(int http_status) {
  switch (http_status) {
    case 400:
    case 404:
      return "INVALID_REQUEST";
    case 401:
    case 403:
      return "REQUEST_DENIED";
    case 429:
      return "OVER_QUERY_LIMIT";
    default:
      return "UNKNOWN_ERROR";
  }
}

bool retryable_http(int http_status) { return http_status == 500 || http_status == 503 || http_status == 504; }

const char* parse_upstream_json(std::string_view body, rapidjson::Document* doc) {
  std::string scratch;
  const std::string_view text = defuse_zero_exponents(body, &scratch);
  doc->Parse<rapidjson::kParseFullPrecisionFlag | rapidjson::kParseIterativeFlag>(text.data(), text.size());
  if (doc->HasParseError()) return "a body that is not JSON";
  // Depth first with a stack of its own: (value, depth).
  std::vector<std::pair<const rapidjson::Value*, int>> todo{{doc, 1}};
  while (!todo.empty()) {
    auto [v, depth] = todo.back();
    todo.pop_back();
    if (depth > kMaxJsonDepth) {
      static const std::string too_deep = "JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels";
      return too_deep.c_str();
    }
    if (v->IsObject()) {
      for (const auto& m : v->GetObject()) todo.emplace_back(&m.value, depth + 1);
    } else if (v->IsArray()) {
      for (const auto& e : v->GetArray()) todo.emplace_back(&e, depth + 1);
    }
  }
  return nullptr;
}

std::string_view defuse_zero_exponents(std::string_view body, std::string* scratch) {
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  const size_t n = body.size();
  bool copied = false;
  bool in_string = false;
  for (size_t i = 0; i < n; ++i) {
    char c = body[i];
    if (in_string) {
      if (c == '\\') {
        ++i;  // the escaped byte
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
      continue;
    }
    if (c != '-' && !digit(c)) continue;
    // A number starts here. What rapidjson reads of it is the JSON grammar's longest prefix,
    // [-] int [. digits] [e|E [+|-] digits], and it converts that prefix before it looks at what
    // follows. A zero's int is "0"; after it, a fraction of zeros and an exponent are measured.
    size_t k = i + (c == '-');
    if (k < n && body[k] == '0') {
      const size_t tail = ++k;
      bool zero = true;
      if (k + 1 < n && body[k] == '.' && digit(body[k + 1])) {
        for (++k; k < n && digit(body[k]); ++k) zero &= body[k] == '0';
      }
      if (k + 1 < n && (body[k] == 'e' || body[k] == 'E')) {
        size_t e = k + 1;
        if (e < n && (body[e] == '+' || body[e] == '-')) ++e;
        if (e < n && digit(body[e])) {
          while (e < n && digit(body[e])) ++e;
          k = e;
        }
      }
      const std::string_view canonical = ".0";
      if (zero && k > tail && body.substr(tail, k - tail) != canonical) {
        if (!copied) {
          scratch->assign(body);
          copied = true;
        }
        // Same length, so that a parse error's offset still points into the body as received.
        scratch->replace(tail, k - tail, k - tail, ' ');
        scratch->replace(tail, canonical.size(), canonical);
      }
    }
    // Skip the rest of the run: nothing in it can start a number of its own ("10.0e-30" is not
    // "0.0e-30" after a 1).
    size_t j = i + 1;
    while (j < n && (digit(body[j]) || body[j] == '.')) ++j;
    if (j < n && (body[j] == 'e' || body[j] == 'E')) {
      ++j;
      if (j < n && (body[j] == '+' || body[j] == '-')) ++j;
      while (j < n && digit(body[j])) ++j;
    }
    i = std::max(j, k) - 1;
  }
  return copied ? std::string_view(*scratch) : body;
}

std::string number_text(double v) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

}  // namespace places
