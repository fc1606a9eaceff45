// NewApi: the searchNearby request, the translation of places, and of the error envelope.
#include "places/new_api.h"

#include <cmath>

namespace places {
namespace {

using rapidjson::Value;
using Alloc = rapidjson::Document::AllocatorType;

// A point's viewport when the place has none: location ± this many degrees (Google's for a point).
constexpr double kViewportHalfDeg = 0.0013489802915;

const Value* member(const Value& v, const char* name) {
  if (!v.IsObject()) return nullptr;
  auto m = v.FindMember(name);
  return m == v.MemberEnd() ? nullptr : &m->value;
}

const Value* string_member(const Value& v, const char* name) {
  const Value* m = member(v, name);
  return m && m->IsString() ? m : nullptr;
}

const Value* number_member(const Value& v, const char* name) {
  const Value* m = member(v, name);
  return m && m->IsNumber() ? m : nullptr;
}

// {lat, lng} from a New-API LatLng {latitude, longitude}; false when either is missing.
bool lat_lng(const Value* ll, double dlat, double dlng, Value* out, Alloc& alloc) {
  if (!ll) return false;
  const Value* lat = number_member(*ll, "latitude");
  const Value* lng = number_member(*ll, "longitude");
  if (!lat || !lng) return false;
  out->SetObject();
  out->AddMember("lat", Value(lat->GetDouble() + dlat), alloc);
  out->AddMember("lng", Value(lng->GetDouble() + dlng), alloc);
  return true;
}

void copy_string(const Value& from, const char* from_name, Value& to, const char* to_name, Alloc& alloc) {
  if (const Value* s = string_member(from, from_name)) to.AddMember(Value(to_name, alloc), Value(*s, alloc), alloc);
}

int price_level(std::string_view level) {
  static constexpr std::string_view kLevels[] = {"PRICE_LEVEL_FREE", "PRICE_LEVEL_INEXPENSIVE", "PRICE_LEVEL_MODERATE",
                                                 "PRICE_LEVEL_EXPENSIVE", "PRICE_LEVEL_VERY_EXPENSIVE"};
  for (int i = 0; i < 5; ++i) {
    if (level == kLevels[i]) return i;
  }
  return -1;
}

const char* legacy_status_for_new(std::string_view status, int code) {
  if (status == "INVALID_ARGUMENT" || status == "FAILED_PRECONDITION" || status == "OUT_OF_RANGE" ||
      status == "NOT_FOUND") {
    return "INVALID_REQUEST";
  }
  if (status == "PERMISSION_DENIED" || status == "UNAUTHENTICATED") return "REQUEST_DENIED";
  if (status == "RESOURCE_EXHAUSTED") return "OVER_QUERY_LIMIT";
  if (status.empty()) return legacy_status_for_http(code);
  return "UNKNOWN_ERROR";
}

bool retryable_new(int code) { return code == 429 || retryable_http(code); }

}  // namespace

http::Request NewApi::request(const PlacesQuery& q) const {
  http::Request r;
  r.method = "POST";
  r.target = "/v1/places:searchNearby";
  r.headers = {{"Content-Type", "application/json"},
               {"X-Goog-Api-Key", key_},
               {"X-Goog-FieldMask", std::string(kFieldMask)},
               {"User-Agent", "herd-places/1"}};
  r.body = "{\"maxResultCount\":" + std::to_string(q.bound) +
           ",\"locationRestriction\":{\"circle\":{\"center\":{\"latitude\":" + number_text(q.lat) +
           ",\"longitude\":" + number_text(q.lng) +
           "},\"radius\":" + number_text(std::round(q.radius_m * 1000.0) / 1000.0) + "}}}";
  return r;
}

rapidjson::Value translate_place(const rapidjson::Value& place, Alloc& alloc) {
  Value out(rapidjson::kObjectType);
  if (!place.IsObject()) return out;
  copy_string(place, "businessStatus", out, "business_status", alloc);
  Value location;
  const Value* loc = member(place, "location");
  if (lat_lng(loc, 0, 0, &location, alloc)) {
    Value geometry(rapidjson::kObjectType);
    Value ne, sw;
    const Value* viewport = member(place, "viewport");
    bool have = viewport && lat_lng(member(*viewport, "high"), 0, 0, &ne, alloc) &&
                lat_lng(member(*viewport, "low"), 0, 0, &sw, alloc);
    if (!have) {
      lat_lng(loc, kViewportHalfDeg, kViewportHalfDeg, &ne, alloc);
      lat_lng(loc, -kViewportHalfDeg, -kViewportHalfDeg, &sw, alloc);
    }
    Value vp(rapidjson::kObjectType);
    vp.AddMember("northeast", ne, alloc);
    vp.AddMember("southwest", sw, alloc);
    geometry.AddMember("location", location, alloc);
    geometry.AddMember("viewport", vp, alloc);
    out.AddMember("geometry", geometry, alloc);
  }
  copy_string(place, "iconBackgroundColor", out, "icon_background_color", alloc);
  copy_string(place, "iconMaskBaseUri", out, "icon_mask_base_uri", alloc);
  if (const Value* name = member(place, "displayName")) copy_string(*name, "text", out, "name", alloc);
  if (const Value* hours = member(place, "currentOpeningHours")) {
    if (const Value* open = member(*hours, "openNow"); open && open->IsBool()) {
      Value oh(rapidjson::kObjectType);
      oh.AddMember("open_now", Value(open->GetBool()), alloc);
      out.AddMember("opening_hours", oh, alloc);
    }
  }
  copy_string(place, "id", out, "place_id", alloc);
  if (const Value* plus = member(place, "plusCode"); plus && plus->IsObject()) {
    Value pc(rapidjson::kObjectType);
    copy_string(*plus, "compoundCode", pc, "compound_code", alloc);
    copy_string(*plus, "globalCode", pc, "global_code", alloc);
    if (pc.MemberCount() > 0) out.AddMember("plus_code", pc, alloc);
  }
  if (const Value* level = string_member(place, "priceLevel")) {
    int n = price_level(std::string_view(level->GetString(), level->GetStringLength()));
    if (n >= 0) out.AddMember("price_level", Value(n), alloc);
  }
  if (const Value* rating = number_member(place, "rating")) out.AddMember("rating", Value(*rating, alloc), alloc);
  copy_string(place, "id", out, "reference", alloc);
  out.AddMember("scope", Value("GOOGLE"), alloc);
  if (const Value* types = member(place, "types"); types && types->IsArray()) {
    Value list(rapidjson::kArrayType);
    for (const auto& t : types->GetArray()) {
      if (t.IsString()) list.PushBack(Value(t, alloc), alloc);
    }
    out.AddMember("types", list, alloc);
  }
  if (const Value* count = number_member(place, "userRatingCount")) {
    out.AddMember("user_ratings_total", Value(*count, alloc), alloc);
  }
  copy_string(place, "formattedAddress", out, "vicinity", alloc);
  return out;
}

PlacesAnswer NewApi::interpret(const http::Response& response) const {
  const int code = response.status;
  rapidjson::Document body;
  const char* bad = parse_upstream_json(response.body, &body);
  if (!bad && !body.IsObject()) bad = "a body that is not JSON";
  const bool json = !bad;
  if (json) {
    if (const Value* error = member(body, "error"); error && error->IsObject()) {
      const Value* status = string_member(*error, "status");
      const Value* message = string_member(*error, "message");
      const Value* ecode = member(*error, "code");
      int c = ecode && ecode->IsInt() ? ecode->GetInt() : code;
      std::string_view st = status ? std::string_view(status->GetString(), status->GetStringLength()) : "";
      std::string text = message && message->GetStringLength() > 0
                             ? redact(std::string_view(message->GetString(), message->GetStringLength()), key_)
                             : "the places upstream answered HTTP " + std::to_string(code) +
                                   (st.empty() ? "" : " " + std::string(st));
      return error_answer(legacy_status_for_new(st, c), text, retryable_new(code));
    }
  }
  if (code < 200 || code >= 300 || !json) {
    std::string what = json ? "" : std::string(" with ") + bad;
    const char* status = code >= 200 && code < 300 ? "UNKNOWN_ERROR" : legacy_status_for_http(code);
    return error_answer(status, "the places upstream answered HTTP " + std::to_string(code) + what,
                        retryable_new(code));
  }
  PlacesAnswer a;
  a.doc = std::make_shared<rapidjson::Document>(rapidjson::kObjectType);
  auto& alloc = a.doc->GetAllocator();
  Value results(rapidjson::kArrayType);
  if (const Value* places = member(body, "places"); places && places->IsArray()) {
    for (const auto& p : places->GetArray()) {
      if (p.IsObject()) results.PushBack(translate_place(p, alloc), alloc);
    }
  }
  a.status = results.Empty() ? "ZERO_RESULTS" : "OK";
  a.summary = "status " + a.status + ", " + std::to_string(results.Size()) + " results";
  a.doc->AddMember("html_attributions", Value(rapidjson::kArrayType), alloc);
  a.doc->AddMember("results", results, alloc);
  a.doc->AddMember("status", Value(a.status.c_str(), alloc), alloc);
  return a;
}

}  // namespace places
