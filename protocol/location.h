// ISO 6709 decimal-degree locations as clients send them, e.g. "+34.068930-118.445127".
#pragma once

#include <optional>
#include <string_view>

namespace protocol {

// A latitude/longitude pair in decimal degrees.
struct Location {
  double lat = 0;
  double lng = 0;
};

// Parses exactly `[+-]D+.D+[+-]D+.D+` (explicit sign on both numbers, a dot with at least one
// digit on each side, nothing else, no whitespace). Latitude must lie in [-90, 90] and longitude
// in [-180, 180]; the range check is exact on the decimal text, so "+90.000" is accepted and
// "+90.0000001" (or +90 followed by any non-zero digit, however far) is rejected. The values
// themselves are converted with std::from_chars (nearest double). Returns nullopt otherwise.
std::optional<Location> parse_location(std::string_view text);

// Whether parse_location accepts `text`, without converting it (the record paths keep the text;
// only the dashboard's map wants the numbers, and it samples).
bool valid_location(std::string_view text);

}  // namespace protocol
