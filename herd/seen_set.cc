// SeenSet implementation.
#include "herd/seen_set.h"

#include <array>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "herd/unaligned.h"
#include "protocol/fields.h"

namespace herd {

namespace {

// The bytes the parse stops at: whitespace (SPEC.md's six) ends a field, a comma a name.
constexpr uint8_t kText = 0, kSpace = 1, kComma = 2;
constexpr auto kByteClass = [] {
  std::array<uint8_t, 256> t{};
  for (unsigned c = 0; c < 256; ++c) t[c] = protocol::is_space(static_cast<unsigned char>(c)) ? kSpace : kText;
  t[','] = kComma;
  return t;
}();

}  // namespace

#if defined(__SSE2__)
// The parse of extra fields shorter than 64 bytes (a flooded record's " seen=A,B,C" nearly always
// is): copied into a padded buffer, classified 16 bytes at a time into a whitespace mask and a
// comma mask, the fields read off the whitespace mask's edges and the names off the commas, each
// name's tag loaded as one word from the buffer. The views point into `extra`.
SeenSet SeenSet::parse_short(std::string_view extra) {
  SeenSet set;
  const size_t n = extra.size();
  alignas(16) char buf[kShortExtra + 1 + 8];  // room for an 8-byte load at any name
  std::memset(buf, ' ', sizeof buf);
  if (n) std::memcpy(buf, extra.data(), n);
  uint64_t space = ~uint64_t{0} << n;  // past the end: whitespace
  uint64_t comma = 0;
  for (size_t k = 0; k < n; k += 16) {
    const __m128i v = _mm_load_si128(reinterpret_cast<const __m128i*>(buf + k));
    space |= uint64_t{protocol::space_bits16(v)} << k;
    comma |= uint64_t{static_cast<uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(','))))} << k;
  }
  // Starts and ends of fields alternate; every field ends by bit n at the latest.
  uint64_t edges = space ^ (space << 1 | 1);
  while (edges) {
    const auto start = static_cast<unsigned>(__builtin_ctzll(edges));
    edges &= edges - 1;
    const auto end = static_cast<unsigned>(__builtin_ctzll(edges));
    edges &= edges - 1;
    // (A field shorter than the prefix is followed by padding, so it cannot compare equal.)
    if (std::memcmp(buf + start, kPrefix.data(), kPrefix.size()) != 0) continue;
    unsigned from = start + static_cast<unsigned>(kPrefix.size());
    uint64_t commas = comma & ((uint64_t{1} << end) - 1) & ~((uint64_t{1} << from) - 1);
    for (;;) {
      const unsigned to = commas ? static_cast<unsigned>(__builtin_ctzll(commas)) : end;
      if (to > from) {
        const size_t size = to - from;
        set.add(Key{tag_from(load64(buf + from), size), std::string_view(extra.data() + from, size)});
      }
      if (!commas) break;
      commas &= commas - 1;
      from = to + 1;
    }
  }
  return set;
}
#endif

SeenSet SeenSet::parse(std::string_view extra) {
#if defined(__SSE2__)
  if (extra.size() <= kShortExtra) return parse_short(extra);
#endif
  // One pass over the extra fields, a byte at a time through a class table: the names of each seen=
  // field, and any other field passed over.
  SeenSet set;
  const char* p = extra.data();
  const size_t n = extra.size();
  size_t i = 0;
  while (i < n) {
    if (kByteClass[static_cast<unsigned char>(p[i])] == kSpace) {
      ++i;
      continue;
    }
    if (n - i <= kPrefix.size() || std::memcmp(p + i, kPrefix.data(), kPrefix.size()) != 0) {
      while (i < n && kByteClass[static_cast<unsigned char>(p[i])] != kSpace) ++i;  // another field
      continue;
    }
    i += kPrefix.size();
    size_t name = i;
    for (;; ++i) {
      const uint8_t c = i < n ? kByteClass[static_cast<unsigned char>(p[i])] : kSpace;
      if (c == kText) continue;
      if (i > name) set.add(std::string_view(p + name, i - name));
      name = i + 1;
      if (c == kSpace) break;
    }
  }
  return set;
}

uint64_t SeenSet::tag_of(std::string_view name) {
  return tag_from(load_short(name.data(), name.size() < 8 ? name.size() : 8), name.size());
}

void SeenSet::append_field(std::string& out) const {
  if (size_ == 0) return;
  // One sized write: the field goes on every record a server floods.
  size_t total = 1 + kPrefix.size() + (size_ - 1);
  for (size_t i = 0; i < size_; ++i) total += names_[i].size;
  const size_t start = out.size();
  out.resize(start + total);
  char* p = out.data() + start;
  *p++ = ' ';
  std::memcpy(p, kPrefix.data(), kPrefix.size());
  p += kPrefix.size();
  for (size_t i = 0; i < size_; ++i) {
    if (i) *p++ = ',';
    if (names_[i].size < 16) {
      copy_short(p, names_[i].data, names_[i].size);  // (a server's name nearly always)
    } else {
      std::memcpy(p, names_[i].data, names_[i].size);
    }
    p += names_[i].size;
  }
}

}  // namespace herd
