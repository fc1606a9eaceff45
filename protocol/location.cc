// ISO 6709 location parsing.
#include "protocol/location.h"

#include <charconv>
#include <cstdint>
#include <system_error>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

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

// Whether |d| <= limit, where `limit` is the limit's digits: most numbers have no more integer
// digits than the limit, and equal-length digit strings compare as their values do.
bool at_most(const SignedDecimal& d, std::string_view limit, unsigned limit_value) {
  const std::string_view i = d.int_digits;
  if (i.size() < limit.size()) return true;
  if (i.size() == limit.size()) {
    for (size_t k = 0; k < i.size(); ++k) {  // (two or three digits: no call to memcmp)
      if (i[k] != limit[k]) return i[k] < limit[k];
    }
  }
  return decimal_at_most(i, d.frac_digits, limit_value);  // the limit itself, or leading zeros
}

#if defined(__SSE2__)
// The 16 bytes at p as three bit sets (bit k for byte k): digits, signs (+ -) and dots.
inline void classify16(const char* p, uint32_t* digits, uint32_t* signs, uint32_t* dots) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m128i digit = _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8('0' - 1)), _mm_cmplt_epi8(v, _mm_set1_epi8('9' + 1)));
  const __m128i sign = _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('+')), _mm_cmpeq_epi8(v, _mm_set1_epi8('-')));
  *digits = static_cast<uint32_t>(_mm_movemask_epi8(digit));
  *signs = static_cast<uint32_t>(_mm_movemask_epi8(sign));
  *dots = static_cast<uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('.'))));
}

// A location of 16 to 32 bytes (a phone's, with 4 to 10 decimals) is checked from bit sets rather
// than byte by byte: every byte a digit, sign or dot; signs at 0 and j only, dots at p1 and p2 only,
// and at least one digit in each of the four runs between them. Every location is checked once per
// record a server takes, at the entry and at each receiver. Exact: the same answer as the scan.
bool scan_location_16_to_32(std::string_view text, SignedDecimal* a, SignedDecimal* b) {
  const size_t n = text.size();
  uint32_t digits, signs, dots, hi_digits, hi_signs, hi_dots;
  classify16(text.data(), &digits, &signs, &dots);
  classify16(text.data() + n - 16, &hi_digits, &hi_signs, &hi_dots);
  const unsigned shift = static_cast<unsigned>(n - 16);  // the second load overlaps the first
  digits |= hi_digits << shift;
  signs |= hi_signs << shift;
  dots |= hi_dots << shift;
  const uint32_t all = n == 32 ? ~0u : (1u << n) - 1;
  if ((digits | signs | dots) != all || !(signs & 1)) return false;
  const uint32_t second_sign = signs & (signs - 1);
  const uint32_t second_dot = dots & (dots - 1);
  if (!second_sign || (second_sign & (second_sign - 1)) || !second_dot || (second_dot & (second_dot - 1))) return false;
  const auto j = static_cast<size_t>(__builtin_ctz(second_sign));
  const auto p1 = static_cast<size_t>(__builtin_ctz(dots));
  const auto p2 = static_cast<size_t>(__builtin_ctz(second_dot));
  if (!(1 < p1 && p1 + 1 < j && j + 1 < p2 && p2 + 1 < n)) return false;
  *a = SignedDecimal{text[0] == '-', text.substr(1, p1 - 1), text.substr(p1 + 1, j - p1 - 1)};
  *b = SignedDecimal{text[j] == '-', text.substr(j + 1, p2 - j - 1), text.substr(p2 + 1)};
  return true;
}
#endif

// The two numbers of a valid location (see parse_location), or false.
bool scan_location(std::string_view text, SignedDecimal* lat, SignedDecimal* lng) {
  SignedDecimal a, b;
#if defined(__SSE2__)
  if (text.size() >= 16 && text.size() <= 32) {
    if (!scan_location_16_to_32(text, &a, &b)) return false;
  } else
#endif
  {
    size_t pos = 0;
    const auto first = scan_signed_decimal(text, pos);
    if (!first) return false;
    const auto second = scan_signed_decimal(text, pos);
    if (!second || pos != text.size()) return false;
    a = *first;
    b = *second;
  }
  if (!at_most(a, "90", 90) || !at_most(b, "180", 180)) return false;
  *lat = a;
  *lng = b;
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
