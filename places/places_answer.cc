// PlacesAnswer helpers: error answers, cutting to a bound, redaction.
#include "places/places_answer.h"

#include "http/url.h"
#include "places/google_json.h"

namespace places {
namespace {

void replace_all(std::string& s, std::string_view what, std::string_view with) {
  if (what.empty()) return;
  for (size_t pos = s.find(what); pos != std::string::npos; pos = s.find(what, pos + with.size())) {
    s.replace(pos, what.size(), with);
  }
}

}  // namespace

PlacesAnswer error_answer(std::string_view status, std::string_view message, bool retryable) {
  PlacesAnswer a;
  a.doc = std::make_shared<rapidjson::Document>(rapidjson::kObjectType);
  auto& alloc = a.doc->GetAllocator();
  a.doc->AddMember("html_attributions", rapidjson::Value(rapidjson::kArrayType), alloc);
  a.doc->AddMember("results", rapidjson::Value(rapidjson::kArrayType), alloc);
  a.doc->AddMember("status", rapidjson::Value(status.data(), static_cast<rapidjson::SizeType>(status.size()), alloc), alloc);
  a.doc->AddMember("error_message",
                   rapidjson::Value(message.data(), static_cast<rapidjson::SizeType>(message.size()), alloc), alloc);
  a.status = std::string(status);
  a.retryable = retryable;
  a.summary = "status " + a.status + ": " + std::string(message);
  return a;
}

std::string render_answer(const PlacesAnswer& answer, int bound) {
  const rapidjson::Document& doc = *answer.doc;
  auto results = doc.FindMember("results");
  size_t keep = bound < 0 ? 0 : static_cast<size_t>(bound);
  if (results == doc.MemberEnd() || !results->value.IsArray() || results->value.Size() <= keep) {
    return google_json(doc);
  }
  // Copy everything but the results, and the first `keep` of those.
  rapidjson::Document cut(rapidjson::kObjectType);
  auto& alloc = cut.GetAllocator();
  for (auto m = doc.MemberBegin(); m != doc.MemberEnd(); ++m) {
    rapidjson::Value name(m->name, alloc);
    if (m == results) {
      rapidjson::Value list(rapidjson::kArrayType);
      for (size_t i = 0; i < keep; ++i) list.PushBack(rapidjson::Value(m->value[static_cast<rapidjson::SizeType>(i)], alloc), alloc);
      cut.AddMember(name, list, alloc);
    } else {
      cut.AddMember(name, rapidjson::Value(m->value, alloc), alloc);
    }
  }
  return google_json(cut);
}

std::string error_reply(std::string_view status, std::string_view message) {
  return google_json(*error_answer(status, message).doc);
}

std::string redact(std::string_view text, std::string_view secret) {
  std::string out(text);
  if (secret.empty()) return out;
  replace_all(out, secret, "***");
  std::string encoded = http::url_encode(secret);
  if (encoded != secret) replace_all(out, encoded, "***");
  return out;
}

}  // namespace places
