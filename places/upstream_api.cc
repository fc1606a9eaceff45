// Helpers shared by the two Nearby Search flavours.
#include "places/upstream_api.h"

#include <algorithm>
#include <charconv>
#include <utility>
#include <vector>

#include "places/json_reader.h"

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

namespace {

std::string_view name_of(const rapidjson::Value::ConstMemberIterator& m) {
  return std::string_view(m->name.GetString(), m->name.GetStringLength());
}

// Whether two members of `object` have the same name: pairwise for the small objects Google sends,
// by sorting the names for big ones (a 4 MiB body can hold an object of 500,000 members). Not a hash
// set: std::hash's seed is fixed and public, so an upstream can send keys that all collide, and the
// set then costs n squared compares; a sort costs n log n whatever the keys.
bool repeats_a_key(const rapidjson::Value& object) {
  constexpr rapidjson::SizeType kPairwise = 16;
  if (object.MemberCount() <= kPairwise) {
    for (auto a = object.MemberBegin(); a != object.MemberEnd(); ++a) {
      for (auto b = a + 1; b != object.MemberEnd(); ++b) {
        if (name_of(a) == name_of(b)) return true;
      }
    }
    return false;
  }
  std::vector<std::string_view> names;
  names.reserve(object.MemberCount());
  for (auto m = object.MemberBegin(); m != object.MemberEnd(); ++m) names.push_back(name_of(m));
  std::sort(names.begin(), names.end());
  return std::adjacent_find(names.begin(), names.end()) != names.end();
}

}  // namespace

const char* parse_upstream_json(std::string_view body, rapidjson::Document* doc) {
  if (read_json(body, doc).IsError()) return "a body that is not JSON";
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
      // Readers disagree on which of two equal keys counts (rapidjson's FindMember: the first; a
      // client's parser: usually the last), and the re-layout would write both: a second
      // "results" passed whole, past the WHATSAT's bound.
      if (repeats_a_key(*v)) return "JSON that repeats a key in one object";
      for (const auto& m : v->GetObject()) todo.emplace_back(&m.value, depth + 1);
    } else if (v->IsArray()) {
      for (const auto& e : v->GetArray()) todo.emplace_back(&e, depth + 1);
    }
  }
  return nullptr;
}

std::string number_text(double v) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

}  // namespace places
