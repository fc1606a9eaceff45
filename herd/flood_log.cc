// FloodLog implementation: a deque of blocks of encoded entries, evicted from the front.
#include "herd/flood_log.h"

#include <algorithm>
#include <cstring>

#include "herd/unaligned.h"

namespace herd {
namespace {

void write_header(char* p, uint32_t size, FloodLog::Kind kind, uint64_t seq, uint64_t mask) {
  std::memcpy(p, &size, 4);
  p[4] = static_cast<char>(kind);
  p[5] = p[6] = p[7] = 0;
  std::memcpy(p + 8, &seq, 8);
  std::memcpy(p + 16, &mask, 8);
}

}  // namespace

FloodLog::FloodLog(size_t capacity_bytes, uint64_t first_seq)
    : capacity_(capacity_bytes),
      block_bytes_(std::clamp(capacity_bytes / 8, kMinBlockBytes, kMaxBlockBytes)),
      next_seq_(first_seq < 1 ? 1 : first_seq),
      published_next_(next_seq_) {}

FloodLog::~FloodLog() = default;

void FloodLog::encode(std::string* out, Kind kind, uint64_t seq, uint64_t mask, std::string_view line) {
  size_t at = out->size();
  out->resize(at + kEntryHeader);
  write_header(out->data() + at, static_cast<uint32_t>(kEntryHeader + line.size()), kind, seq, mask);
  out->append(line);
}

uint64_t FloodLog::append(Kind kind, uint64_t mask, std::string_view line) {
  const size_t size = kEntryHeader + line.size();
  std::lock_guard lock(mu_);
  if (blocks_.empty() || blocks_.back().cap - blocks_.back().used < size) {
    Block b;
    b.id = next_block_id_++;
    b.first_seq = next_seq_;
    b.cap = std::max(block_bytes_, size);
    if (b.cap == block_bytes_ && spare_) {
      b.data = std::move(spare_);
    } else {
      b.data.reset(new char[b.cap]);
    }
    bytes_ += b.cap;
    blocks_.push_back(std::move(b));
  }
  Block& b = blocks_.back();
  char* p = b.data.get() + b.used;
  const uint64_t seq = next_seq_++;
  published_next_.store(next_seq_, std::memory_order_relaxed);
  write_header(p, static_cast<uint32_t>(size), kind, seq, mask);
  std::memcpy(p + kEntryHeader, line.data(), line.size());
  b.used += size;
  if (kind == Kind::kRecord) {
    b.owed |= mask;
    const auto at = static_cast<uint16_t>(seq - b.first_seq);
    for (uint64_t m = mask; m; m &= m - 1) b.last_owed[static_cast<size_t>(__builtin_ctzll(m))] = at;
  }
  // What counts is the blocks' room, not the bytes used in them: an entry that does not fit leaves
  // the rest of its block unused, and entries just over half a block would otherwise hold twice the
  // capacity.
  while (bytes_ > capacity_ && blocks_.size() > 1) {
    Block& old = blocks_.front();
    bytes_ -= old.cap;
    evicted_.push_back({old.first_seq, blocks_[1].first_seq, old.owed, old.last_owed});
    if (evicted_.size() > kEvictedHistory) evicted_.pop_front();
    if (old.cap == block_bytes_ && !spare_) spare_ = std::move(old.data);
    blocks_.pop_front();  // a large block is freed here; they exist only for lines over a block
  }
  if (waiters_) grew_.notify_all();
  return seq;
}

bool FloodLog::wait_for_seq(uint64_t seq, std::chrono::milliseconds timeout,
                            const std::atomic<bool>& stop) const {
  std::unique_lock lock(mu_);
  ++waiters_;
  grew_.wait_for(lock, timeout, [&] { return next_seq_ > seq || stop.load(std::memory_order_acquire); });
  bool there = next_seq_ > seq;
  --waiters_;
  return there;
}

void FloodLog::wake_all() const {
  std::lock_guard lock(mu_);
  grew_.notify_all();
}

uint64_t FloodLog::next_seq() const {
  std::lock_guard lock(mu_);
  return next_seq_;
}

uint64_t FloodLog::oldest_seq() const {
  std::lock_guard lock(mu_);
  return blocks_.empty() ? next_seq_ : blocks_.front().first_seq;
}

size_t FloodLog::bytes_held() const {
  std::lock_guard lock(mu_);
  return bytes_;
}

void FloodLog::locate_locked(uint64_t seq, Cursor* cursor) const {
  cursor->seq = seq;
  if (blocks_.empty() || seq >= next_seq_) {
    cursor->seq = next_seq_;
    cursor->block = blocks_.empty() ? next_block_id_ : blocks_.back().id;
    cursor->offset = blocks_.empty() ? 0 : blocks_.back().used;
    return;
  }
  // The last block whose first seq is <= seq.
  auto it = std::upper_bound(blocks_.begin(), blocks_.end(), seq,
                             [](uint64_t s, const Block& b) { return s < b.first_seq; });
  const Block& b = *(it - 1);
  size_t off = 0;
  for (uint64_t s = b.first_seq; s < seq; ++s) off += load32(b.data.get() + off);
  cursor->block = b.id;
  cursor->offset = off;
}

FloodLog::Cursor FloodLog::cursor_at(uint64_t seq) const {
  std::lock_guard lock(mu_);
  Cursor c;
  uint64_t oldest = blocks_.empty() ? next_seq_ : blocks_.front().first_seq;
  if (seq < oldest) {
    c.seq = seq;  // behind: read() says so
    return c;
  }
  locate_locked(seq, &c);
  return c;
}

const FloodLog::Block* FloodLog::position_locked(Cursor* cursor) const {
  const uint64_t front_id = blocks_.front().id;
  bool valid = cursor->block >= front_id && cursor->block - front_id < blocks_.size();
  if (valid) {
    const Block& b = blocks_[cursor->block - front_id];
    if (cursor->offset >= b.used) {
      // At the end of its block: the entry is at the start of the next one.
      valid = cursor->block - front_id + 1 < blocks_.size();
      if (valid) {
        ++cursor->block;
        cursor->offset = 0;
      }
    }
  }
  if (!valid) locate_locked(cursor->seq, cursor);
  return &blocks_[cursor->block - front_id];
}

bool FloodLog::skip_evicted_locked(Cursor* cursor, uint64_t bit) const {
  if (bit == kEverything) return false;  // a reader of every entry (persistence) lost some
  if (evicted_.empty() || evicted_.front().first_seq > cursor->seq) return false;  // not remembered
  for (auto it = evicted_.rbegin(); it != evicted_.rend() && it->end_seq > cursor->seq; ++it) {
    for (uint64_t m = it->owed & bit; m; m &= m - 1) {
      // In the block the cursor was in, only what was owed from the cursor on counts.
      if (it->first_seq + it->last_owed[static_cast<size_t>(__builtin_ctzll(m))] >= cursor->seq) return false;
    }
  }
  locate_locked(blocks_.empty() ? next_seq_ : blocks_.front().first_seq, cursor);
  return true;
}

const FloodLog::Block* FloodLog::start_read_locked(Cursor* cursor, uint64_t bit, ReadStatus* status) const {
  *status = ReadStatus::kOk;
  const uint64_t oldest = blocks_.empty() ? next_seq_ : blocks_.front().first_seq;
  if (cursor->seq < oldest && !skip_evicted_locked(cursor, bit)) {
    *status = ReadStatus::kBehind;
    return nullptr;
  }
  if (cursor->seq >= next_seq_) return nullptr;  // nothing new
  return position_locked(cursor);
}

FloodLog::ReadStatus FloodLog::read(Cursor* cursor, std::string* out, size_t max_bytes, uint64_t bit) const {
  std::lock_guard lock(mu_);
  ReadStatus status;
  const Block* block = start_read_locked(cursor, bit, &status);
  if (!block) return status;
  const Block& b = *block;
  const char* base = b.data.get();
  size_t end = cursor->offset;
  uint64_t count = 0;
  while (end < b.used && (count == 0 || end - cursor->offset + load32(base + end) <= max_bytes)) {
    end += load32(base + end);
    ++count;
  }
  out->append(base + cursor->offset, end - cursor->offset);
  cursor->offset = end;
  cursor->seq += count;
  return ReadStatus::kOk;
}

FloodLog::ReadStatus FloodLog::read_owed(Cursor* cursor, uint64_t bit, std::string* lines, size_t max_bytes,
                                         size_t* looked_at, uint64_t* appended, uint64_t* records) const {
  *looked_at = 0;
  *appended = 0;
  if (records) *records = 0;
  uint64_t passed = 0;
  std::lock_guard lock(mu_);
  ReadStatus status;
  const Block* block = start_read_locked(cursor, bit, &status);
  if (!block) return status;
  const Block& b = *block;
  const char* base = b.data.get();
  size_t at = cursor->offset;
  const size_t start = lines->size();
  uint64_t count = 0;
  while (at < b.used && (count == 0 || lines->size() - start < max_bytes)) {
    const uint32_t size = load32(base + at);
    if (static_cast<Kind>(base[at + 4]) == Kind::kRecord) {
      ++passed;
      if (load64(base + at + 16) & bit) {
        lines->append(base + at + kEntryHeader, size - kEntryHeader).push_back('\n');
        ++*appended;
      }
    }
    at += size;
    ++count;
  }
  if (records) *records = passed;
  *looked_at = at - cursor->offset;
  cursor->offset = at;
  cursor->seq += count;
  return ReadStatus::kOk;
}

bool FloodLog::next_entry(std::string_view* raw, Entry* entry) {
  if (raw->size() < kEntryHeader) return false;
  const char* p = raw->data();
  uint32_t size = load32(p);
  if (size < kEntryHeader || size > raw->size()) return false;
  entry->kind = static_cast<Kind>(p[4]);
  entry->seq = load64(p + 8);
  entry->mask = load64(p + 16);
  entry->line = raw->substr(kEntryHeader, size - kEntryHeader);
  raw->remove_prefix(size);
  return true;
}

}  // namespace herd
