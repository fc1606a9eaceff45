// Loads of little-endian integers from byte buffers at any alignment (the backlog's entries, the
// record files' frames, SipHash's input). x86-64 and arm64 are little-endian; memcpy keeps the load
// alignment-safe and compiles to one instruction.
#pragma once

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

}  // namespace herd
