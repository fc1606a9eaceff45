// Byte-level helpers shared by the protocol parsers: the six whitespace bytes of SPEC.md, ASCII
// digits, trimming, field splitting and exact range checks on decimal text. Locale-free and
// allocation-free.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace protocol {

// True for exactly the six bytes ' ', '\t', '\r', '\n', '\f', '\v'; false for every other byte.
constexpr bool is_space(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

#if defined(__SSE2__)
// Bit i set when byte i of the 16 in `v` is one of is_space()'s six: the field splitters' first step.
inline uint32_t space_bits16(__m128i v) {
  const __m128i space = _mm_cmpeq_epi8(v, _mm_set1_epi8(' '));
  // '\t' '\n' '\v' '\f' '\r' are 9..13: v - 9, as an unsigned byte, at most 4.
  const __m128i t = _mm_sub_epi8(v, _mm_set1_epi8('\t'));
  const __m128i ctl = _mm_cmpeq_epi8(_mm_min_epu8(t, _mm_set1_epi8(4)), t);
  return static_cast<uint32_t>(_mm_movemask_epi8(_mm_or_si128(space, ctl)));
}
#endif

// True for exactly the ASCII bytes '0'..'9'.
constexpr bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

// Eight digits at once (timestamps and coordinates carry runs of them): whether the 8 bytes at p
// are all '0'..'9', and, if so, their value as a decimal number (p[0] the most significant).
inline uint64_t load8(const char* p) {
  uint64_t x;
  std::memcpy(&x, p, 8);
  return x;
}
inline bool eight_digits(uint64_t x) {
  // Each byte is 0x30..0x39: its high nibble is 3, and adding 6 does not carry out of the low one.
  return (x & 0xF0F0F0F0F0F0F0F0ull) == 0x3030303030303030ull &&
         ((x + 0x0606060606060606ull) & 0xF0F0F0F0F0F0F0F0ull) == 0x3030303030303030ull;
}
inline uint32_t eight_digits_value(uint64_t x) {
  // Little-endian: the first digit is the lowest byte. Pairs, then quads, then the eight.
  x -= 0x3030303030303030ull;
  x = (x * 10 + (x >> 8)) & 0x00FF00FF00FF00FFull;
  x = (x * 100 + (x >> 16)) & 0x0000FFFF0000FFFFull;
  return static_cast<uint32_t>(x * 10000 + (x >> 32));
}

// Returns `s` without its leading and trailing whitespace (a view into `s`; empty if all space).
std::string_view trim(std::string_view s);

// Splits `line` on runs of whitespace, ignoring leading and trailing whitespace. Stores the first
// min(count, max) fields in out[0..] (views into `line`) and returns the number of fields, except
// that it stops and returns max + 1 as soon as a (max+1)-th field is seen. `out` must have room
// for `max` views; it may be null when max == 0.
size_t split_fields(std::string_view line, std::string_view* out, size_t max);

// The field of `line` that starts at or after *pos (whitespace-separated, as split_fields finds
// them), with *pos moved past it; empty when there is none. For lines with any number of fields.
std::string_view next_field(std::string_view line, size_t* pos);

// True when the non-negative decimal `int_digits`.`frac_digits` (both all ASCII digits, either may
// be empty) is <= `limit`, decided exactly on the text (no rounding, any number of digits).
bool decimal_at_most(std::string_view int_digits, std::string_view frac_digits, unsigned limit);

// True when `digits` contains a byte other than '0' (for digit strings: the value is non-zero).
bool has_nonzero(std::string_view digits);

}  // namespace protocol
