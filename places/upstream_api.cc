// Helpers shared by the two Nearby Search flavours.
#include "places/upstream_api.h"

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
  bool copied = false;
  bool in_string = false;
  for (size_t i = 0; i < body.size(); ++i) {
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
    // A number: [-] digits [. digits] [e|E [+|-] digits].
    size_t j = i + (c == '-');
    bool nonzero = false;
    for (; j < body.size() && (digit(body[j]) || body[j] == '.'); ++j) nonzero |= body[j] >= '1' && body[j] <= '9';
    size_t exp_at = j;
    if (j < body.size() && (body[j] == 'e' || body[j] == 'E')) {
      ++j;
      if (j < body.size() && (body[j] == '+' || body[j] == '-')) ++j;
      while (j < body.size() && digit(body[j])) ++j;
      if (!nonzero) {
        if (!copied) {
          scratch->assign(body);
          copied = true;
        }
        for (size_t k = exp_at; k < j; ++k) (*scratch)[k] = ' ';
      }
    }
    i = j - 1;
  }
  return copied ? std::string_view(*scratch) : body;
}

std::string number_text(double v) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

}  // namespace places
