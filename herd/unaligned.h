// Loads of little-endian integers from byte buffers at any alignment (the backlog's entries, the
// record files' frames, SipHash's input), and short copies. x86-64 and arm64 are little-endian;
// memcpy keeps the load alignment-safe and compiles to one instruction.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace herd {

inline uint32_t load32(const void* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

inline uint64_t load64(const void* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// The n <= 8 bytes at p as a little-endian integer (the bytes above them zero), reading nothing
// outside them: two overlapping loads for 4 to 8 bytes, three byte loads below (for n == 1 or 2
// some of them are the same byte). For the tail of SipHash's input and a name's seen-set tag.
inline uint64_t load_short(const void* p, size_t n) {
  const auto* b = static_cast<const unsigned char*>(p);
  if (n >= 4) return load32(b) | uint64_t{load32(b + n - 4)} << (8 * (n - 4));
  if (n == 0) return 0;
  return b[0] | uint64_t{b[n / 2]} << (8 * (n / 2)) | uint64_t{b[n - 1]} << (8 * (n - 1));
}

// Copies n < 16 bytes with a few fixed-size moves, reading and writing nothing outside the n bytes
// (overlapping moves for the odd sizes, below four bytes too: a client's log tag such as c12): for the
// short pieces of the hot paths (a server's name, a log entry's tag, a run between escapes), where a call to
// memcpy costs more than the copy.
inline void copy_short(char* to, const char* from, size_t n) {
  if (n >= 8) {
    const uint64_t a = load64(from), b = load64(from + n - 8);
    std::memcpy(to, &a, 8);
    std::memcpy(to + n - 8, &b, 8);
  } else if (n >= 4) {
    const uint32_t a = load32(from), b = load32(from + n - 4);
    std::memcpy(to, &a, 4);
    std::memcpy(to + n - 4, &b, 4);
  } else if (n >= 2) {
    uint16_t a, b;
    std::memcpy(&a, from, 2);
    std::memcpy(&b, from + n - 2, 2);
    std::memcpy(to, &a, 2);
    std::memcpy(to + n - 2, &b, 2);
  } else if (n == 1) {
    to[0] = from[0];
  }
}

}  // namespace herd
