// Timestamp parsing, the real-time clock and exact signed time differences.
#include "protocol/timestamp.h"

#include <time.h>

#include <charconv>
#include <cstring>

#include "protocol/fields.h"

namespace protocol {

std::optional<Timestamp> parse_timestamp(std::string_view text) {
  const size_t n = text.size();
  size_t i = 0;
  while (i < n && text[i] == '0') ++i;  // leading zeros carry no value
  const size_t first_significant = i;
  int64_t sec = 0;
  // Eight digits at a time while they stay within the 18 significant digits allowed (the check
  // below finds the 19th), then one at a time.
  while (i + 8 <= n && i + 8 - first_significant <= 18 && eight_digits(load8(text.data() + i))) {
    sec = sec * 100'000'000 + eight_digits_value(load8(text.data() + i));
    i += 8;
  }
  while (i < n && is_digit(static_cast<unsigned char>(text[i]))) {
    if (i - first_significant >= 18) return std::nullopt;  // 19+ significant digits: >= 10^18
    sec = sec * 10 + (text[i] - '0');
    ++i;
  }
  if (i == 0) return std::nullopt;  // no integer digits at all
  Timestamp t;
  t.sec = sec;
  if (i == n) return t;
  if (text[i] != '.') return std::nullopt;
  ++i;
  const size_t fraction_start = i;
  int32_t nsec = 0;
  if (i + 8 <= n && eight_digits(load8(text.data() + i))) {
    nsec = static_cast<int32_t>(eight_digits_value(load8(text.data() + i)));
    i += 8;
  }
  for (; i < n; ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (!is_digit(c)) return std::nullopt;
    if (i - fraction_start < 9) nsec = nsec * 10 + (c - '0');
  }
  const size_t fraction_digits = n - fraction_start;
  if (fraction_digits == 0) return std::nullopt;  // "5." is rejected
  for (size_t k = fraction_digits; k < 9; ++k) nsec *= 10;
  t.nsec = nsec;
  return t;
}

Timestamp realtime_now() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return timestamp_of(ts);
}

bool too_far_ahead(Timestamp reported, Timestamp now, int64_t max_ahead_sec) {
  if (max_ahead_sec <= 0) return false;
  // now + max_ahead_sec cannot overflow: valid seconds are below 10^18 and the bound is small
  // next to the 9.2 * 10^18 an int64_t holds.
  Timestamp limit{now.sec + max_ahead_sec, now.nsec};
  return reported > limit;
}

namespace {

// The eight decimal digits of n < 10^8, most significant first, as the bytes of one little-endian
// word. Lane arithmetic: two 4-digit halves in 32-bit lanes, each split into two 2-digit values in
// 16-bit lanes, each of those into tens and ones in bytes. The multiply-shifts divide exactly in
// their ranges (x * 5243 >> 19 == x / 100 for x < 43,699; x * 103 >> 10 == x / 10 for x < 179), and
// no lane's product reaches the next lane.
uint64_t eight_digit_text(uint32_t n) {
  const uint64_t halves = (n / 10000) | static_cast<uint64_t>(n % 10000) << 32;
  const uint64_t hundreds = ((halves * 5243) >> 19) & 0x0000007F0000007FULL;
  const uint64_t pairs = hundreds | (halves - hundreds * 100) << 16;
  const uint64_t tens = ((pairs * 103) >> 10) & 0x000F000F000F000FULL;
  const uint64_t digits = tens | (pairs - tens * 10) << 8;
  return digits + 0x3030303030303030ULL;
}

}  // namespace

size_t format_time_diff(char* out, Timestamp a, Timestamp b) {
  const bool negative = a < b;
  const Timestamp& hi = negative ? b : a;
  const Timestamp& lo = negative ? a : b;
  // hi >= lo, both valid: the difference is in [0, 10^18) seconds, so no overflow.
  int64_t sec = hi.sec - lo.sec;
  int32_t nsec = hi.nsec - lo.nsec;
  if (nsec < 0) {
    nsec += 1'000'000'000;
    sec -= 1;
  }
  char* p = out;
  *p++ = negative ? '-' : '+';
  if (sec < 10) {
    *p++ = static_cast<char>('0' + sec);  // the common case: a report from this second or the last
  } else {
    p = std::to_chars(p, out + 1 + 18, sec).ptr;  // at most 18 digits: sec < 10^18
  }
  *p++ = '.';
  const uint32_t fraction = static_cast<uint32_t>(nsec);
  *p++ = static_cast<char>('0' + fraction / 100'000'000);
  const uint64_t rest = eight_digit_text(fraction % 100'000'000);
  std::memcpy(p, &rest, 8);
  return static_cast<size_t>(p + 8 - out);
}

void append_time_diff(std::string& out, Timestamp a, Timestamp b) {
  char text[kMaxTimeDiffSize];
  out.append(text, format_time_diff(text, a, b));
}

}  // namespace protocol
