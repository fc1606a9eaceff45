// CRC-32C (Castagnoli, the polynomial of iSCSI, ext4 and LevelDB): the checksum of every frame the
// server writes to its data_dir. Table-driven, eight bytes at a time. Pure; thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace herd {

// The CRC-32C of `data`, continuing from `crc` (0 to start).
uint32_t crc32c(std::string_view data, uint32_t crc = 0);

}  // namespace herd
