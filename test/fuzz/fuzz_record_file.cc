// Fuzz harness: the frame reader of the data directory's files (herd/record_file.h) and the backlog's
// entry decoder under it (FloodLog::next_entry), on any bytes: a damaged disk or a hand-edited file.
// The first byte's low bit asks for the checksums of the frames that chain from the start to be
// made right first, so that the search reaches the payloads. Properties: the reader returns frames
// one after another from offset 0, each whole, of a known kind, and encoding its entry again gives
// the frame's bytes; it ends (kEnd) exactly at the file's end or stops (kDamaged) at the first
// frame that is not whole, and stays there; it makes at most one step per 32 bytes; after damage,
// valid_frame_follows() says what a brute-force search for a chain of frames to the end finds.
// next_entry() over the same bytes takes entries of at least the entry header and within what is
// left, and encode() gives each back.
// Dictionary: record_file.dict
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "herd/crc32c.h"
#include "herd/flood_log.h"
#include "herd/record_file.h"
#include "test/fuzz/fuzz_check.h"
#include "test/fuzz/record_frames.h"

namespace {

using fuzz_frames::get32;

// A whole frame at `at`, written here from the format's description (README "Persistence").
bool model_frame(std::string_view s, size_t at, size_t* end) {
  if (at + 8 + 24 > s.size()) return false;
  const uint32_t len = get32(s, at);
  if (len < 24 || len > s.size() - at - 8) return false;
  const std::string_view payload = s.substr(at + 8, len);
  const auto kind = static_cast<uint8_t>(payload[4]);
  if (get32(payload, 0) != len || !(kind == 1 || kind == 2 || kind == 10 || kind == 11)) return false;
  if (herd::crc32c(payload) != get32(s, at + 4)) return false;
  *end = at + 8 + len;
  return true;
}

// The entry `e` encoded again, with the spare header bytes of `original` (encode() writes zeros).
std::string reencode(const herd::FloodLog::Entry& e, std::string_view original) {
  std::string entry;
  herd::FloodLog::encode(&entry, e.kind, e.seq, e.mask, e.line);
  FUZZ_CHECK(entry.size() == original.size());
  std::memcpy(entry.data() + 5, original.data() + 5, 3);
  return entry;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  std::string file(reinterpret_cast<const char*>(data + 1), size - 1);
  if (data[0] & 1) fuzz_frames::fix_checksums(&file);

  // The reader.
  auto reader = herd::RecordReader::over(file, "fuzz.log");
  FUZZ_CHECK(reader->size() == file.size());
  size_t expect_at = 0;
  size_t steps = 0;
  for (;;) {
    FUZZ_CHECK(++steps <= file.size() / 32 + 1);
    herd::FloodLog::Entry e;
    const herd::RecordReader::Status s = reader->next(&e);
    FUZZ_CHECK(reader->offset() == expect_at);
    if (s == herd::RecordReader::Status::kEnd) {
      FUZZ_CHECK(expect_at == file.size());
      FUZZ_CHECK(reader->next(&e) == herd::RecordReader::Status::kEnd);
      break;
    }
    size_t end = 0;
    const bool whole = model_frame(file, expect_at, &end);
    if (s == herd::RecordReader::Status::kDamaged) {
      FUZZ_CHECK(expect_at < file.size() && !whole);
      FUZZ_CHECK(reader->next(&e) == herd::RecordReader::Status::kDamaged && reader->offset() == expect_at);
      bool follows = false;
      for (size_t at = expect_at + 1; at < file.size() && !follows; ++at) {
        size_t next = at, e2;
        bool any = false;
        while (next < file.size() && model_frame(file, next, &e2)) {
          next = e2;
          any = true;
        }
        follows = any && next == file.size();
      }
      FUZZ_CHECK(reader->valid_frame_follows() == follows);
      break;
    }
    FUZZ_CHECK(whole);
    const std::string_view payload = std::string_view(file).substr(expect_at + 8, end - expect_at - 8);
    FUZZ_CHECK(e.line.size() + herd::FloodLog::kEntryHeader == payload.size());
    FUZZ_CHECK(e.line.data() == payload.data() + herd::FloodLog::kEntryHeader);
    std::string frame;
    herd::append_frame(&frame, reencode(e, payload));
    FUZZ_CHECK(frame == std::string_view(file).substr(expect_at, end - expect_at));
    if (payload.substr(5, 3) == std::string_view("\0\0\0", 3)) {
      std::string again;
      herd::append_frame(&again, static_cast<uint8_t>(e.kind), e.seq, e.mask, e.line);
      FUZZ_CHECK(again == frame);
    }
    expect_at = end;
  }

  // The backlog's decoder over the same bytes.
  std::string_view raw(file);
  herd::FloodLog::Entry e;
  steps = 0;
  for (;;) {
    const std::string_view before = raw;
    const bool got = herd::FloodLog::next_entry(&raw, &e);
    if (!got) {
      FUZZ_CHECK(raw.data() == before.data() && raw.size() == before.size());
      FUZZ_CHECK(before.size() < herd::FloodLog::kEntryHeader || get32(before, 0) < herd::FloodLog::kEntryHeader ||
                 get32(before, 0) > before.size());
      break;
    }
    FUZZ_CHECK(++steps <= file.size() / herd::FloodLog::kEntryHeader);
    const size_t took = before.size() - raw.size();
    FUZZ_CHECK(took == get32(before, 0) && took >= herd::FloodLog::kEntryHeader);
    FUZZ_CHECK(raw.data() == before.data() + took);
    FUZZ_CHECK(reencode(e, before.substr(0, took)) == before.substr(0, took));
  }
  return 0;
}
