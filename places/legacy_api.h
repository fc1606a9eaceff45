// LegacyApi: Nearby Search (legacy). GET /maps/api/place/nearbysearch/json?location=LAT,LNG&
// radius=METERS&key=KEY; the reply is already a legacy object: kept as it is (html_attributions
// and results added when missing), any status passed on with its error_message. Retryable:
// HTTP 500/503/504, and OVER_QUERY_LIMIT unless its message speaks of the daily quota.
//
// Immutable: thread-safe.
#pragma once

#include <string>

#include "places/upstream_api.h"

namespace places {

class LegacyApi final : public UpstreamApi {
 public:
  explicit LegacyApi(std::string key) : key_(std::move(key)) {}
  const char* name() const override { return "google"; }
  http::Request request(const PlacesQuery& q) const override;
  PlacesAnswer interpret(const http::Response& response) const override;

 private:
  std::string key_;
};

}  // namespace places
