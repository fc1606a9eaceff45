// UpstreamApi: one flavour of Google's Nearby Search as the google providers see it: how a WHATSAT
// query becomes an HTTP request, and what a complete HTTP response means (a legacy-shaped
// PlacesAnswer, retryable or not). LegacyApi (places/legacy_api.h) and NewApi (places/new_api.h).
//
// Implementations are immutable after construction: thread-safe.
#pragma once

#include <string>

#include "http/message.h"
#include "places/places_answer.h"
#include "places/places_provider.h"

namespace places {

class UpstreamApi {
 public:
  virtual ~UpstreamApi() = default;
  // "google" or "google-new", for the log.
  virtual const char* name() const = 0;
  // The request for `q`, its target relative to the endpoint. Carries the API key.
  virtual http::Request request(const PlacesQuery& q) const = 0;
  // The meaning of a complete response (any HTTP status).
  virtual PlacesAnswer interpret(const http::Response& response) const = 0;
};

// The legacy status that stands for an HTTP status when a body says nothing better: 400 and 404
// INVALID_REQUEST, 401 and 403 REQUEST_DENIED, 429 OVER_QUERY_LIMIT, anything else UNKNOWN_ERROR.
const char* legacy_status_for_http(int http_status);

// HTTP statuses worth another attempt (PLACES.md: what Google's own clients retry): 500, 503, 504.
bool retryable_http(int http_status);

// Shortest round-trip decimal text of `v` ("34.06893", "-118.445127", "10000").
std::string number_text(double v);

}  // namespace places
