// RecordFile: the frame format of the files in a server's data directory (README "Persistence"), and
// a reader that tells a torn tail from other damage.
//
// A file is a sequence of frames: u32 payload length, u32 CRC-32C of the payload, then the payload,
// which is one entry in FloodLog's encoding (size, kind, seq, mask, line; little-endian). Besides
// FloodLog's kinds (a record's flood line, a neighbour's progress) a file holds a header first and,
// for a snapshot, an end frame last.
//
// Threads: RecordReader is used by one thread at a time; the free functions are pure.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "herd/flood_log.h"

namespace herd {

// Entry kinds that only files hold (FloodLog's own are 1 and 2).
inline constexpr uint8_t kFileHeaderKind = 10;  // line: "herd-log 1 ..." or "herd-snapshot 1 ..."
inline constexpr uint8_t kSnapshotEndKind = 11;  // line: the number of records in the snapshot

inline constexpr size_t kFrameHeader = 8;  // u32 length, u32 crc

// Appends one frame holding the entry (kind, seq, mask, line).
void append_frame(std::string* out, uint8_t kind, uint64_t seq, uint64_t mask, std::string_view line);
// Appends one frame around `entry`, already in FloodLog's encoding.
void append_frame(std::string* out, std::string_view entry);

class RecordReader {
 public:
  enum class Status {
    kEntry,    // *entry is the next entry (its views are valid until the reader goes away)
    kEnd,      // the file ends cleanly after the last frame
    kDamaged,  // the frame at offset() is incomplete or fails its checksum
  };

  // Maps `path` read-only. nullptr with *error (naming the file) when it cannot be read.
  static std::unique_ptr<RecordReader> open(const std::string& path, std::string* error);
  // Reads `bytes` (which must outlive the reader) as the file `path` would be read: for the tests
  // and the fuzz harnesses.
  static std::unique_ptr<RecordReader> over(std::string_view bytes, std::string path);
  ~RecordReader();
  RecordReader(const RecordReader&) = delete;
  RecordReader& operator=(const RecordReader&) = delete;

  Status next(FloodLog::Entry* entry);
  // Where the last entry returned starts, or where the damage starts after kDamaged.
  uint64_t offset() const { return offset_; }
  uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }

  // After kDamaged: whether valid frames follow the damage, one after another up to the file's end.
  // If none do, the damage is a torn tail (a write cut short) that may be cut off; if they do, the
  // file was damaged in the middle, which no crash can do. A frame alone inside the torn bytes (a
  // client ID may spell one) is not enough: what follows it must chain to the end as well.
  bool valid_frame_follows() const;

 private:
  RecordReader(std::string path, const char* data, size_t size, bool mapped);
  // The frame at `at` is whole and its checksum matches; *end is where it ends.
  bool frame_at(size_t at, size_t* end) const;

  std::string path_;
  const char* data_;
  size_t size_;
  bool mapped_;  // data_ is a mapping of the file, unmapped with the reader
  size_t pos_ = 0;
  uint64_t offset_ = 0;
};

}  // namespace herd
