// The offline places provider: gazetteer cities rendered as a legacy Nearby Search response.
#include "places/offline_places.h"

#include <charconv>
#include <utility>

#include "places/google_json.h"

namespace places {

namespace {

// A point's viewport is its location ± this many degrees (what Google returns for cities).
constexpr double kViewportHalfDeg = 0.0013489802915;
// Rough size of one rendered result, to reserve the answer in one allocation.
constexpr size_t kResultBytes = 1024;

// The constant parts of the layout, at their fixed depths (see google_json.h for the rules).
constexpr std::string_view kHead = "{\n   \"html_attributions\" : [],\n   \"results\" : ";
constexpr std::string_view kEmptyTail = "[],\n   \"status\" : \"ZERO_RESULTS\"\n}";
constexpr std::string_view kOkTail = "\n   ],\n   \"status\" : \"OK\"\n}";
constexpr std::string_view kLocation =
    "{\n"
    "         \"geometry\" : {\n"
    "            \"location\" : {\n"
    "               \"lat\" : ";
constexpr std::string_view kLng = ",\n               \"lng\" : ";
constexpr std::string_view kNortheast =
    "\n"
    "            },\n"
    "            \"viewport\" : {\n"
    "               \"northeast\" : {\n"
    "                  \"lat\" : ";
constexpr std::string_view kViewportLng = ",\n                  \"lng\" : ";
constexpr std::string_view kSouthwest =
    "\n"
    "               },\n"
    "               \"southwest\" : {\n"
    "                  \"lat\" : ";
constexpr std::string_view kIconsAndName =
    "\n"
    "               }\n"
    "            }\n"
    "         },\n"
    "         \"icon\" : \"https://maps.gstatic.com/mapfiles/place_api/icons/v1/png_71/geocode-71.png\",\n"
    "         \"icon_background_color\" : \"#7B9EB0\",\n"
    "         \"icon_mask_base_uri\" : \"https://maps.gstatic.com/mapfiles/place_api/icons/v2/generic_pinlet\",\n"
    "         \"name\" : ";
constexpr std::string_view kPlaceId = ",\n         \"place_id\" : \"geonames:";
constexpr std::string_view kReference = "\",\n         \"reference\" : \"geonames:";
constexpr std::string_view kTypes =
    "\",\n"
    "         \"scope\" : \"GOOGLE\",\n"
    "         \"types\" : [ \"locality\", \"political\" ],\n"
    "         \"vicinity\" : ";
constexpr std::string_view kResultEnd = "\n      }";

void append_uint(std::string& out, uint32_t n) {
  char buf[12];
  auto r = std::to_chars(buf, buf + sizeof buf, n);
  out.append(buf, r.ptr);
}

void append_result(std::string& out, const City& c) {
  out += kLocation;
  append_google_double(out, c.lat);
  out += kLng;
  append_google_double(out, c.lng);
  out += kNortheast;
  append_google_double(out, c.lat + kViewportHalfDeg);
  out += kViewportLng;
  append_google_double(out, c.lng + kViewportHalfDeg);
  out += kSouthwest;
  append_google_double(out, c.lat - kViewportHalfDeg);
  out += kViewportLng;
  append_google_double(out, c.lng - kViewportHalfDeg);
  out += kIconsAndName;
  append_google_string(out, c.name);
  out += kPlaceId;
  append_uint(out, c.geoname_id);
  out += kReference;
  append_uint(out, c.geoname_id);
  out += kTypes;
  append_google_string(out, c.name);
  out += kResultEnd;
}

}  // namespace

OfflinePlaces::OfflinePlaces(std::shared_ptr<const Gazetteer> gazetteer)
    : gazetteer_(std::move(gazetteer)) {}

std::string OfflinePlaces::render(const PlacesQuery& q) const {
  std::vector<const City*> cities;
  if (q.bound > 0) {
    cities = gazetteer_->nearby(q.lat, q.lng, q.radius_m, static_cast<size_t>(q.bound));
  }
  std::string out;
  out.reserve(kHead.size() + kOkTail.size() + cities.size() * kResultBytes);
  out += kHead;
  if (cities.empty()) {
    out += kEmptyTail;
    return out;
  }
  out += '[';
  for (size_t i = 0; i < cities.size(); ++i) {
    out += i == 0 ? "\n      " : ",\n      ";
    append_result(out, *cities[i]);
  }
  out += kOkTail;
  return out;
}

void OfflinePlaces::nearby(reactor::EventLoop&, const PlacesQuery& q, Done done) {
  done(render(q));
}

}  // namespace places
