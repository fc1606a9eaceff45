// Parsing of one protocol line into a Command: IAMAT and WHATSAT from clients, AT from peers.
// Every string_view in a parsed Command points into the line that was parsed.
#pragma once

#include <optional>
#include <string_view>

#include "protocol/location.h"
#include "protocol/timestamp.h"

namespace protocol {

enum class CommandKind { kEmpty, kIamat, kWhatsat, kAt, kInvalid };

// IAMAT <client_id> <location> <time>: the operands as sent, plus the parsed time. The location is
// checked (parse_location accepts it) but kept as text: parse_location(location_text) has the numbers.
struct Iamat {
  std::string_view client_id, location_text, time_text;
  Timestamp time;
};

// WHATSAT <client_id> <radius_km> <bound>.
struct Whatsat {
  std::string_view client_id;
  double radius_km = 0;
  int bound = 0;
};

// AT <server> <diff> <client_id> <location> <time> [extra...]: a peer's flooded record.
// `extra` is everything after the sixth field with surrounding whitespace trimmed (empty if none).
// The location as in Iamat: checked, kept as text.
struct At {
  std::string_view server, diff, client_id, location_text, time_text;
  Timestamp time;
  std::string_view extra;
};

// The result of parse_command; only the member matching `kind` is filled in.
struct Command {
  CommandKind kind = CommandKind::kEmpty;
  Iamat iamat;
  Whatsat whatsat;
  At at;
};

// Largest accepted WHATSAT radius in kilometres, and the accepted range of the WHATSAT bound.
inline constexpr unsigned kMaxRadiusKm = 50;
inline constexpr int kMinBound = 1;
inline constexpr int kMaxBound = 20;

// Parses one line given without its terminator (the caller strips "\n" and one "\r"; any other
// whitespace left at either end is ignored). Verbs are case-sensitive.
//  - empty or whitespace-only: kEmpty.
//  - "IAMAT id loc time", exactly 4 fields, loc per parse_location, time per parse_timestamp.
//  - "WHATSAT id radius bound", exactly 4 fields; radius `D+` or `D+.D+` (".5" and "5." are
//    rejected, as are signs and exponents), 0 < radius <= 50 decided exactly on the text (and
//    the converted double must be > 0); bound digits only (leading zeros ok) with value 1..20.
//  - "AT server diff id loc time [extra...]", at least 6 fields; diff exactly `[+-]D+.D{9}`.
//  - anything else: kInvalid.
// Every string_view in the result points into `line`. Never allocates.
Command parse_command(std::string_view line);

// Parses a line from a peer link, where only AT records are taken: kAt with *at filled in as
// parse_command(line).at would be, kEmpty for an empty or whitespace-only line, kInvalid for any
// other line (an IAMAT or WHATSAT too). For the receiver's hot path: no Command is built.
CommandKind parse_at(std::string_view line, At* at);

// Parses a WHATSAT radius as described above; nullopt when invalid.
std::optional<double> parse_radius_km(std::string_view text);

// Parses a WHATSAT bound as described above; nullopt when invalid.
std::optional<int> parse_bound(std::string_view text);

// True when `text` is exactly `[+-]D+.D{9}` (the time-difference field of an AT line).
bool is_time_diff(std::string_view text);

}  // namespace protocol
