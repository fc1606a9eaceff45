// ISO 6709 location parsing.
#include "protocol/location.h"

#include <charconv>
#include <cstdint>
#include <system_error>

#include "protocol/fields.h"

namespace protocol {
namespace {

// One signed ISO 6709 number scanned from the text.
struct SignedDecimal {
  bool negative = false;
  std::string_view int_digits;
  std::string_view frac_digits;
};

// Scans `[+-]D+.D+` starting at text[pos]; on success advances pos past it.
std::optional<SignedDecimal> scan_signed_decimal(std::string_view text, size_t& pos) {
  const size_t n = text.size();
  size_t i = pos;
  if (i >= n || (text[i] != '+' && text[i] != '-')) return std::nullopt;
  SignedDecimal d;
  d.negative = text[i] == '-';
  ++i;
  const size_t int_start = i;
  while (i < n && is_digit(static_cast<unsigned char>(text[i]))) ++i;
  if (i == int_start || i >= n || text[i] != '.') return std::nullopt;
  d.int_digits = text.substr(int_start, i - int_start);
  ++i;
  const size_t frac_start = i;
  while (i < n && is_digit(static_cast<unsigned char>(text[i]))) ++i;
  if (i == frac_start) return std::nullopt;
  d.frac_digits = text.substr(frac_start, i - frac_start);
  pos = i;
  return d;
}

// Converts a scanned number already known to be at most 180 in magnitude to the nearest double.
// Such a number can only be out of range by underflow (e.g. 0.000...0001 with 400 zeros), which
// reads as zero.
double to_double(const SignedDecimal& d) {
  // The common case (a phone's 6 to 9 decimals): at most 15 digits in all make an integer m below
  // 2^53 and a power of ten 10^k with k <= 15, both exact doubles, so m / 10^k is the correctly
  // rounded quotient (IEEE division), the same double from_chars gives, at a fraction of its cost.
  if (d.int_digits.size() + d.frac_digits.size() <= 15) {
    static constexpr double kPow10[] = {1e0, 1e1, 1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                        1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};
    uint64_t m = 0;
    for (char c : d.int_digits) m = m * 10 + static_cast<uint64_t>(c - '0');
    for (char c : d.frac_digits) m = m * 10 + static_cast<uint64_t>(c - '0');
    double value = static_cast<double>(m) / kPow10[d.frac_digits.size()];
    return d.negative ? -value : value;
  }
  const char* begin = d.int_digits.data();
  const char* end = d.frac_digits.data() + d.frac_digits.size();
  double value = 0;
  const auto result = std::from_chars(begin, end, value, std::chars_format::fixed);
  if (result.ec != std::errc()) value = 0;
  return d.negative ? -value : value;
}

// The two numbers of a valid location (see parse_location), or false.
bool scan_location(std::string_view text, SignedDecimal* lat, SignedDecimal* lng) {
  size_t pos = 0;
  const auto a = scan_signed_decimal(text, pos);
  if (!a) return false;
  const auto b = scan_signed_decimal(text, pos);
  if (!b || pos != text.size()) return false;
  if (!decimal_at_most(a->int_digits, a->frac_digits, 90)) return false;
  if (!decimal_at_most(b->int_digits, b->frac_digits, 180)) return false;
  *lat = *a;
  *lng = *b;
  return true;
}

}  // namespace

std::optional<Location> parse_location(std::string_view text) {
  SignedDecimal lat, lng;
  if (!scan_location(text, &lat, &lng)) return std::nullopt;
  return Location{to_double(lat), to_double(lng)};
}

bool valid_location(std::string_view text) {
  SignedDecimal lat, lng;
  return scan_location(text, &lat, &lng);
}

}  // namespace protocol
