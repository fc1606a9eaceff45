// Whitespace trimming, field splitting and decimal range checks on the bytes of SPEC.md.
#include "protocol/fields.h"

#include <cstdint>
#include <cstring>

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

// Bit i set when p[i] is whitespace, for the 16 bytes from p.
inline uint32_t space_bits16_at(const char* p) {
  return space_bits16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// Bit i set when line[base + i] is whitespace or past the line's end, for the 64 bytes from `base`
// (base < line.size()). Only the 16-byte blocks that hold line bytes are classified, and nothing
// past the line is read: a last partial block is read as the line's last 16 bytes, shifted, or, in
// a line shorter than 16, copied into a buffer of spaces first.
inline uint64_t space_bits64(std::string_view line, size_t base) {
  const char* p = line.data() + base;
  const size_t have = line.size() - base;
  if (have >= 64) {
    return uint64_t{space_bits16_at(p)} | uint64_t{space_bits16_at(p + 16)} << 16 |
           uint64_t{space_bits16_at(p + 32)} << 32 | uint64_t{space_bits16_at(p + 48)} << 48;
  }
  uint64_t bits = 0;
  size_t k = 0;
  for (; k + 16 <= have; k += 16) bits |= uint64_t{space_bits16_at(p + k)} << k;
  if (k < have) {
    const auto left = static_cast<unsigned>(have - k);
    uint32_t m;
    if (line.size() >= 16) {
      m = space_bits16_at(line.data() + line.size() - 16) >> (16 - left);
    } else {
      char tail[16];
      std::memset(tail, ' ', sizeof tail);
      std::memcpy(tail, p + k, left);
      m = space_bits16_at(tail) & ((1u << left) - 1);
    }
    bits |= uint64_t{m} << k;
  }
  return bits | ~uint64_t{0} << have;  // past the end: as whitespace
}

}  // namespace
#endif

size_t split_fields(std::string_view line, std::string_view* out, size_t max) {
  size_t count = 0;
  const size_t n = line.size();
#if defined(__SSE2__)
  // Every record a server takes is split here, so the line is classified 64 bytes at a time into a
  // mask, and the fields are read off its edges (bit i set when byte i differs in kind from byte
  // i-1): a field is a start edge and the end edge after it, so the cost goes with the fields, not
  // the bytes.
  const char* p = line.data();
  bool in_field = false;  // whether the byte before the chunk is text
  size_t start = 0;       // while in_field: where that field starts
  for (size_t base = 0; base < n; base += 64) {
    const uint64_t space = space_bits64(line, base);
    uint64_t edges = space ^ (space << 1 | (in_field ? 0 : 1));
    if (in_field && edges) {  // the field of an earlier chunk ends here
      const size_t end = base + static_cast<unsigned>(__builtin_ctzll(edges));
      edges &= edges - 1;
      out[count++] = std::string_view(p + start, end - start);
      in_field = false;
    }
    while (edges) {  // start, end, start, end, ... and perhaps a last start
      const size_t begin = base + static_cast<unsigned>(__builtin_ctzll(edges));
      edges &= edges - 1;
      if (count == max) return max + 1;
      if (!edges) {  // it goes on into the next chunk
        start = begin;
        in_field = true;
        break;
      }
      const size_t end = base + static_cast<unsigned>(__builtin_ctzll(edges));
      edges &= edges - 1;
      out[count++] = std::string_view(p + begin, end - begin);
    }
  }
  if (in_field) out[count++] = std::string_view(p + start, n - start);
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
