// Helpers shared by the two Nearby Search flavours.
#include "places/upstream_api.h"

#include <charconv>

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

std::string number_text(double v) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

}  // namespace places
