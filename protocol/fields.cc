// Whitespace trimming, field splitting and decimal range checks on the bytes of SPEC.md.
#include "protocol/fields.h"

#include <cstdint>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace protocol {

std::string_view trim(std::string_view s) {
  size_t begin = 0;
  size_t end = s.size();
  while (begin < end && is_space(static_cast<unsigned char>(s[begin]))) ++begin;
  while (end > begin && is_space(static_cast<unsigned char>(s[end - 1]))) --end;
  return s.substr(begin, end - begin);
}

#if defined(__SSE2__)
namespace {

// Bit i set when line[base + i] is whitespace, for the 16 bytes from `base` (all within the line).
inline uint32_t space_bits16(const char* p) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m128i space = _mm_cmpeq_epi8(v, _mm_set1_epi8(' '));
  // '\t' '\n' '\v' '\f' '\r' are 9..13: v - 9, as an unsigned byte, at most 4.
  const __m128i t = _mm_sub_epi8(v, _mm_set1_epi8('\t'));
  const __m128i ctl = _mm_cmpeq_epi8(_mm_min_epu8(t, _mm_set1_epi8(4)), t);
  return static_cast<uint32_t>(_mm_movemask_epi8(_mm_or_si128(space, ctl)));
}

}  // namespace
#endif

size_t split_fields(std::string_view line, std::string_view* out, size_t max) {
  size_t count = 0;
  const size_t n = line.size();
#if defined(__SSE2__)
  // Every record a server takes is split here, so the line is classified sixteen bytes at a time
  // and fields are found from the bit masks: the cost goes with the fields, not the bytes.
  bool in_field = false;
  size_t start = 0;
  for (size_t base = 0; base < n; base += 16) {
    uint32_t bits;
    if (base + 16 <= n) {
      bits = space_bits16(line.data() + base);
    } else {  // the tail, byte by byte (never reading past the line); past its end counts as space
      bits = 0xffff;
      for (size_t j = 0; base + j < n; ++j) {
        if (!is_space(static_cast<unsigned char>(line[base + j]))) bits &= ~(1u << j);
      }
    }
    unsigned i = 0;
    while (i < 16) {
      const uint32_t from_i = 0xffffu << i & 0xffffu;
      if (!in_field) {
        const uint32_t text = ~bits & from_i;
        if (!text) break;
        i = static_cast<unsigned>(__builtin_ctz(text));
        if (count == max) return max + 1;
        start = base + i;
        in_field = true;
      } else {
        const uint32_t space = bits & from_i;
        if (!space) break;
        i = static_cast<unsigned>(__builtin_ctz(space));
        out[count++] = line.substr(start, base + i - start);
        in_field = false;
      }
    }
  }
  if (in_field) out[count++] = line.substr(start, n - start);
  return count;
#else
  size_t i = 0;
  while (true) {
    while (i < n && is_space(static_cast<unsigned char>(line[i]))) ++i;
    if (i == n) return count;
    if (count == max) return max + 1;
    const size_t start = i;
    while (i < n && !is_space(static_cast<unsigned char>(line[i]))) ++i;
    out[count++] = line.substr(start, i - start);
  }
#endif
}

std::string_view next_field(std::string_view line, size_t* pos) {
  size_t i = *pos;
  const size_t n = line.size();
  while (i < n && is_space(static_cast<unsigned char>(line[i]))) ++i;
  const size_t start = i;
  while (i < n && !is_space(static_cast<unsigned char>(line[i]))) ++i;
  *pos = i;
  return line.substr(start, i - start);
}

bool has_nonzero(std::string_view digits) {
  for (char c : digits) {
    if (c != '0') return true;
  }
  return false;
}

bool decimal_at_most(std::string_view int_digits, std::string_view frac_digits, unsigned limit) {
  size_t i = 0;
  while (i < int_digits.size() && int_digits[i] == '0') ++i;
  const std::string_view significant = int_digits.substr(i);
  if (significant.size() > 10) return false;  // >= 10^10 > any unsigned limit
  uint64_t value = 0;
  for (char c : significant) value = value * 10 + static_cast<uint64_t>(c - '0');
  if (value != limit) return value < limit;
  return !has_nonzero(frac_digits);
}

}  // namespace protocol
