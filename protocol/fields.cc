// Whitespace trimming, field splitting and decimal range checks on the bytes of SPEC.md.
#include "protocol/fields.h"

#include <cstdint>

namespace protocol {

std::string_view trim(std::string_view s) {
  size_t begin = 0;
  size_t end = s.size();
  while (begin < end && is_space(static_cast<unsigned char>(s[begin]))) ++begin;
  while (end > begin && is_space(static_cast<unsigned char>(s[end - 1]))) --end;
  return s.substr(begin, end - begin);
}

size_t split_fields(std::string_view line, std::string_view* out, size_t max) {
  size_t count = 0;
  size_t i = 0;
  const size_t n = line.size();
  while (true) {
    while (i < n && is_space(static_cast<unsigned char>(line[i]))) ++i;
    if (i == n) return count;
    if (count == max) return max + 1;
    const size_t start = i;
    while (i < n && !is_space(static_cast<unsigned char>(line[i]))) ++i;
    out[count++] = line.substr(start, i - start);
  }
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
