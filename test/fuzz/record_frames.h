// The data directory's frames as its fuzz harnesses handle them (README "Persistence": u32 payload
// length, u32 CRC-32C of the payload, then the payload). Harness-only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "herd/crc32c.h"
#include "herd/unaligned.h"

namespace fuzz_frames {

inline uint32_t get32(std::string_view s, size_t at) { return herd::load32(s.data() + at); }

// Rewrites the checksum of each frame from the start on while its length fits (a frame's payload is
// at least an entry header, 24 bytes), so that an input gets past the checksums to what they guard.
inline void fix_checksums(std::string* file) {
  for (size_t at = 0; at + 8 + 24 <= file->size();) {
    const uint32_t len = get32(*file, at);
    if (len < 24 || len > file->size() - at - 8) break;
    const uint32_t crc = herd::crc32c(std::string_view(*file).substr(at + 8, len));
    std::memcpy(file->data() + at + 4, &crc, 4);
    at += 8 + len;
  }
}

}  // namespace fuzz_frames
