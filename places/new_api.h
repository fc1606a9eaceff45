// NewApi: Places API (New) searchNearby. POST /v1/places:searchNearby with X-Goog-Api-Key, a field
// mask of what the translation uses, maxResultCount = the bound and a circle restriction. Each
// place is translated into the legacy result shape, the error envelope into a legacy status and
// error_message (INVALID_ARGUMENT → INVALID_REQUEST, PERMISSION_DENIED → REQUEST_DENIED,
// RESOURCE_EXHAUSTED → OVER_QUERY_LIMIT, 5xx → UNKNOWN_ERROR). Retryable: HTTP 429, 500, 503, 504.
//
// Immutable: thread-safe.
#pragma once

#include <string>
#include <string_view>

#include <rapidjson/document.h>

#include "places/upstream_api.h"

namespace places {

class NewApi final : public UpstreamApi {
 public:
  // The field mask sent with every request: the fields translate_place() reads.
  static constexpr std::string_view kFieldMask =
      "places.id,places.displayName,places.formattedAddress,places.location,places.viewport,"
      "places.types,places.rating,places.userRatingCount,places.businessStatus,places.priceLevel,"
      "places.currentOpeningHours.openNow,places.plusCode,places.iconMaskBaseUri,"
      "places.iconBackgroundColor";

  explicit NewApi(std::string key) : key_(std::move(key)) {}
  const char* name() const override { return "google-new"; }
  http::Request request(const PlacesQuery& q) const override;
  PlacesAnswer interpret(const http::Response& response) const override;

 private:
  std::string key_;
};

// One New-API place as a legacy Nearby Search result (allocated in `alloc`):
//   business_status ← businessStatus, geometry.location ← location, geometry.viewport ← viewport
//   (high → northeast, low → southwest; without one, location ± 0.0013489802915°),
//   icon_background_color ← iconBackgroundColor, icon_mask_base_uri ← iconMaskBaseUri,
//   name ← displayName.text, opening_hours.open_now ← currentOpeningHours.openNow,
//   place_id and reference ← id, plus_code ← plusCode (compound_code, global_code),
//   price_level ← priceLevel (PRICE_LEVEL_FREE 0 … PRICE_LEVEL_VERY_EXPENSIVE 4), rating ← rating,
//   scope "GOOGLE", types ← types, user_ratings_total ← userRatingCount, vicinity ← formattedAddress.
// Fields the place lacks (or that have the wrong type) are left out.
rapidjson::Value translate_place(const rapidjson::Value& place, rapidjson::Document::AllocatorType& alloc);

}  // namespace places
