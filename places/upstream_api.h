// UpstreamApi: one flavour of Google's Nearby Search as the google providers see it: how a WHATSAT
// query becomes an HTTP request, and what a complete HTTP response means (a legacy-shaped
// PlacesAnswer, retryable or not). LegacyApi (places/legacy_api.h) and NewApi (places/new_api.h).
//
// Implementations are immutable after construction: thread-safe.
#pragma once

#include <string>
#include <string_view>

#include <rapidjson/document.h>

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

// Google's answers nest about 6 deep; a body nested deeper than this is not an answer.
constexpr int kMaxJsonDepth = 32;

// Parses an upstream's `body` into *doc with read_json (json_reader.h: without recursion, so that
// no nesting can exhaust a loop's stack, numbers converted by the C library), refusing a document
// nested deeper than kMaxJsonDepth (whose rendering would recurse, and grow with the square of the
// depth) or with an object that repeats a key (which of the two counts is anyone's guess, and the
// re-layout would pass both on). Returns null when *doc holds the body, else what is wrong with it,
// for the error message ("a body that is not JSON", "JSON nested deeper than 32 levels", "JSON that
// repeats a key in one object").
const char* parse_upstream_json(std::string_view body, rapidjson::Document* doc);

}  // namespace places
