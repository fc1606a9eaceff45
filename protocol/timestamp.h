// Exact POSIX timestamps (integer seconds and nanoseconds): parsing the client's time field,
// reading the real-time clock, and formatting signed differences without floating point.
#pragma once

#include <compare>
#include <cstddef>
#include <ctime>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace protocol {

// A point in POSIX time. Valid values have 0 <= sec < 10^18 and 0 <= nsec < 10^9.
struct Timestamp {
  int64_t sec = 0;
  int32_t nsec = 0;
  friend auto operator<=>(const Timestamp&, const Timestamp&) = default;
  friend bool operator==(const Timestamp&, const Timestamp&) = default;
};

// Exclusive upper bound on Timestamp::sec accepted by parse_timestamp.
inline constexpr int64_t kMaxTimestampSeconds = 1'000'000'000'000'000'000;

// Parses `D+` or `D+.D+` (ASCII digits only: no sign, no exponent, no whitespace, no nan/inf).
// Both sides of a dot must be non-empty: "5." and ".5" are rejected. Leading zeros are fine.
// The seconds must be < 10^18, otherwise nullopt. The first 9 fractional digits give the
// nanoseconds; further fractional digits must still be digits but are truncated, not rounded.
std::optional<Timestamp> parse_timestamp(std::string_view text);

// The current CLOCK_REALTIME time.
Timestamp realtime_now();

// A clock reading (clock_gettime) as a Timestamp, and as milliseconds since the epoch.
inline Timestamp timestamp_of(const timespec& ts) {
  return Timestamp{static_cast<int64_t>(ts.tv_sec), static_cast<int32_t>(ts.tv_nsec)};
}
inline int64_t unix_ms_of(const timespec& ts) {
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// True when `reported` lies more than `max_ahead_sec` seconds after `now` (exactly, in integers);
// max_ahead_sec == 0 means no bound (always false). Preconditions: both timestamps valid,
// max_ahead_sec >= 0. This is how a server refuses reports that would pin a client's location for
// good: a time far in the future beats every real report that follows.
bool too_far_ahead(Timestamp reported, Timestamp now, int64_t max_ahead_sec);

// The longest text of a time difference: a sign, 18 digits of seconds, a point and 9 digits.
inline constexpr size_t kMaxTimeDiffSize = 1 + 18 + 1 + 9;

// Writes a - b as append_time_diff does into `out`, which has room for kMaxTimeDiffSize bytes, and
// returns its length.
size_t format_time_diff(char* out, Timestamp a, Timestamp b);

// Appends a - b to `out` as a sign ('+' when a >= b, '-' when a < b), the whole seconds in
// decimal, a dot and exactly 9 fractional digits, e.g. "+0.000000001", "-1.500000000".
// Computed exactly in integers. Precondition: a and b are valid (see Timestamp).
void append_time_diff(std::string& out, Timestamp a, Timestamp b);

}  // namespace protocol
