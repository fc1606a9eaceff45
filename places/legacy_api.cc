// LegacyApi: the request line, and a legacy reply checked and passed on.
#include "places/legacy_api.h"

#include <cmath>

#include "http/url.h"

namespace places {
namespace {

// Google's text for the quota that a retry cannot help: "You have exceeded your daily request
// quota for this API."
bool daily_quota(std::string_view message) { return message.find("daily") != std::string_view::npos; }

}  // namespace

http::Request LegacyApi::request(const PlacesQuery& q) const {
  http::Request r;
  r.method = "GET";
  r.target = "/maps/api/place/nearbysearch/json?location=" + number_text(q.lat) + "," + number_text(q.lng) +
             "&radius=" + number_text(std::round(q.radius_m * 1000.0) / 1000.0) + "&key=" + http::url_encode(key_);
  r.headers = {{"Accept", "application/json"}, {"User-Agent", "herd-places/1"}};
  return r;
}

PlacesAnswer LegacyApi::interpret(const http::Response& response) const {
  const int code = response.status;
  auto doc = std::make_shared<rapidjson::Document>();
  const char* bad = parse_upstream_json(response.body, doc.get());
  if (bad || !doc->IsObject() || !doc->HasMember("status") || !(*doc)["status"].IsString()) {
    std::string what = bad ? bad : !doc->IsObject() ? "a body that is not JSON" : "JSON without a status";
    if (code == 429) return error_answer("OVER_QUERY_LIMIT", "the places upstream answered HTTP 429 with " + what, true);
    return error_answer(code >= 200 && code < 300 ? "UNKNOWN_ERROR" : legacy_status_for_http(code),
                        "the places upstream answered HTTP " + std::to_string(code) + " with " + what,
                        retryable_http(code));
  }
  auto& alloc = doc->GetAllocator();
  if (!doc->HasMember("html_attributions") || !(*doc)["html_attributions"].IsArray()) {
    doc->RemoveMember("html_attributions");
    doc->AddMember("html_attributions", rapidjson::Value(rapidjson::kArrayType), alloc);
  }
  if (!doc->HasMember("results") || !(*doc)["results"].IsArray()) {
    doc->RemoveMember("results");
    doc->AddMember("results", rapidjson::Value(rapidjson::kArrayType), alloc);
  }
  PlacesAnswer a;
  a.status.assign((*doc)["status"].GetString(), (*doc)["status"].GetStringLength());  // NULs too
  std::string message;
  if (auto m = doc->FindMember("error_message"); m != doc->MemberEnd() && m->value.IsString()) {
    message = redact(std::string_view(m->value.GetString(), m->value.GetStringLength()), key_);
    m->value.SetString(message.data(), static_cast<rapidjson::SizeType>(message.size()), alloc);
  } else if (a.status != "OK" && a.status != "ZERO_RESULTS") {
    // A failure always says what went wrong (SPEC), and Google's UNKNOWN_ERROR often comes bare.
    doc->RemoveMember("error_message");
    const std::string said = "the places upstream answered " + a.status + " without an error_message";
    doc->AddMember("error_message",
                   rapidjson::Value(said.data(), static_cast<rapidjson::SizeType>(said.size()), alloc), alloc);
  }
  // Legacy retry rules: HTTP 500/503/504, and OVER_QUERY_LIMIT unless it is the daily quota (an HTTP
  // 429 alone is not one of them: with the daily quota's message, a retry cannot help).
  a.retryable = retryable_http(code) || (a.status == "OVER_QUERY_LIMIT" && !daily_quota(message));
  a.summary = "status " + a.status + ", " + std::to_string((*doc)["results"].Size()) + " results" +
              (message.empty() ? "" : ": " + message);
  a.doc = std::move(doc);
  return a;
}

}  // namespace places
