// RecordFile implementation: frames over a read-only mapping of the file.
#include "herd/record_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "herd/crc32c.h"
#include "herd/unaligned.h"

namespace herd {
namespace {

bool known_kind(uint8_t kind) {
  return kind == static_cast<uint8_t>(FloodLog::Kind::kRecord) ||
         kind == static_cast<uint8_t>(FloodLog::Kind::kProgress) || kind == kFileHeaderKind ||
         kind == kSnapshotEndKind;
}

}  // namespace

void append_frame(std::string* out, std::string_view entry) {
  uint32_t len = static_cast<uint32_t>(entry.size());
  uint32_t crc = crc32c(entry);
  char head[kFrameHeader];
  std::memcpy(head, &len, 4);
  std::memcpy(head + 4, &crc, 4);
  out->append(head, kFrameHeader);
  out->append(entry);
}

void append_frame(std::string* out, uint8_t kind, uint64_t seq, uint64_t mask, std::string_view line) {
  std::string entry;
  FloodLog::encode(&entry, static_cast<FloodLog::Kind>(kind), seq, mask, line);
  append_frame(out, entry);
}

std::unique_ptr<RecordReader> RecordReader::open(const std::string& path, std::string* error) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *error = path + ": cannot open: " + std::strerror(errno);
    return nullptr;
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    *error = path + ": cannot stat: " + std::strerror(errno);
    ::close(fd);
    return nullptr;
  }
  size_t size = static_cast<size_t>(st.st_size);
  const char* data = nullptr;
  if (size > 0) {
    void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      *error = path + ": cannot map: " + std::strerror(errno);
      ::close(fd);
      return nullptr;
    }
    ::madvise(p, size, MADV_SEQUENTIAL);
    data = static_cast<const char*>(p);
  }
  ::close(fd);
  return std::unique_ptr<RecordReader>(new RecordReader(path, data, size, true));
}

std::unique_ptr<RecordReader> RecordReader::over(std::string_view bytes, std::string path) {
  return std::unique_ptr<RecordReader>(new RecordReader(std::move(path), bytes.data(), bytes.size(), false));
}

RecordReader::RecordReader(std::string path, const char* data, size_t size, bool mapped)
    : path_(std::move(path)), data_(data), size_(size), mapped_(mapped) {}

RecordReader::~RecordReader() {
  if (mapped_ && data_) ::munmap(const_cast<char*>(data_), size_);
}

bool RecordReader::frame_at(size_t at, size_t* end) const {
  if (size_ - at < kFrameHeader + FloodLog::kEntryHeader) return false;
  const uint32_t len = load32(data_ + at);
  if (len < FloodLog::kEntryHeader || len > size_ - at - kFrameHeader) return false;
  const char* payload = data_ + at + kFrameHeader;
  // Cheap checks first, so that scanning garbage for a frame rarely computes a checksum.
  if (load32(payload) != len || !known_kind(static_cast<uint8_t>(payload[4]))) return false;
  if (crc32c(std::string_view(payload, len)) != load32(data_ + at + 4)) return false;
  *end = at + kFrameHeader + len;
  return true;
}

RecordReader::Status RecordReader::next(FloodLog::Entry* entry) {
  offset_ = pos_;
  if (pos_ == size_) return Status::kEnd;
  size_t end;
  if (!frame_at(pos_, &end)) return Status::kDamaged;
  std::string_view raw(data_ + pos_ + kFrameHeader, end - pos_ - kFrameHeader);
  FloodLog::next_entry(&raw, entry);
  pos_ = end;
  return Status::kEntry;
}

bool RecordReader::valid_frame_follows() const {
  size_t end;
  for (size_t at = offset_ + 1; at + kFrameHeader + FloodLog::kEntryHeader <= size_; ++at) {
    if (!frame_at(at, &end)) continue;
    size_t next = end;
    while (next < size_ && frame_at(next, &end)) next = end;
    if (next == size_) return true;
  }
  return false;
}

}  // namespace herd
