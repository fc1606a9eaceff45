// FloodLog: the server's backlog. Every record the server stores is appended here once, in the order
// the table changed, numbered with a sequence number (seq) that only grows, together with the set of
// neighbours the server owes it to (a bit per peer link: the neighbours that are neither where the
// record came from nor named in its seen= set). It serves three readers at once, each through its own
// cursor: every peer link (its live flood: the entries with its bit), catch-up (a neighbour that comes
// back resumes after the last seq it confirmed, as long as the backlog still reaches back that far),
// and persistence (the log writer thread appends every entry to disk).
//
// Bounded: entries live in blocks; once the blocks hold more than `capacity` bytes the oldest block is
// evicted, and a reader whose position was evicted is told it is behind (it then needs a full
// transfer) unless nothing evicted from its position on was owed to it: the backlog remembers, for
// the blocks it evicted lately, the union of their masks and where in the block each bit was last
// owed, so a link that nothing was owed to for a while (it is woken only for what it is owed, and so
// sits where it last read, often mid-block) just moves on. Readers copy entries out under the lock, a block at most per
// call.
//
// Threads: every method is thread-safe. Appends are expected under a table shard lock (see
// FloodRouter), so the lock is held only for a copy and never across I/O; a block is allocated under it
// only while the backlog grows to its capacity (later ones reuse the evicted block).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

namespace herd {

class FloodLog {
 public:
  enum class Kind : uint8_t {
    kRecord = 1,    // a stored record: the flood line (the AT record and its seen= field)
    kProgress = 2,  // "<neighbour> <run> <seq>": how far this server holds a neighbour's history
  };
  struct Entry {
    uint64_t seq = 0;
    uint64_t mask = 0;  // bit k: the neighbour of peer link k is owed this record
    Kind kind = Kind::kRecord;
    std::string_view line;
  };
  // A reader's position: the next seq it will read, and where that entry is.
  struct Cursor {
    uint64_t seq = 0;
    uint64_t block = 0;
    size_t offset = 0;
  };
  enum class ReadStatus { kOk, kBehind };

  static constexpr size_t kEntryHeader = 24;  // u32 size, u8 kind, 3 spare, u64 seq, u64 mask
  static constexpr size_t kMaxBlockBytes = 64 * 1024;
  static constexpr size_t kMinBlockBytes = 4 * 1024;
  // Evicted blocks whose masks are remembered (a few times the backlog's own size, at 152 bytes each).
  static constexpr size_t kEvictedHistory = 4096;
  // The bit of a reader that is owed everything (the persistence writer).
  static constexpr uint64_t kEverything = ~uint64_t{0};

  // The first entry appended gets `first_seq` (>= 1: seq 0 means "nothing").
  FloodLog(size_t capacity_bytes, uint64_t first_seq);
  ~FloodLog();
  FloodLog(const FloodLog&) = delete;
  FloodLog& operator=(const FloodLog&) = delete;

  // Any thread: appends one entry and returns its seq.
  uint64_t append(Kind kind, uint64_t mask, std::string_view line);

  // Any thread: the seq the next append will get; the oldest seq still held (== next_seq() when empty).
  uint64_t next_seq() const;
  uint64_t oldest_seq() const;
  // Any thread, no lock: next_seq() as last published by an append (for stamping table records).
  uint64_t next_seq_relaxed() const { return published_next_.load(std::memory_order_relaxed); }
  // Any thread: the room the blocks held take (at most the capacity and one block, or one line).
  size_t bytes_held() const;

  // Any thread: waits until an entry with a seq >= `seq` exists, *stop is set, or `timeout` passes;
  // true if the entry exists. (For the persistence writer: appends wake it only while it waits.)
  bool wait_for_seq(uint64_t seq, std::chrono::milliseconds timeout, const std::atomic<bool>& stop) const;
  // Any thread: wakes every wait_for_seq() (after setting the stop flag it watches).
  void wake_all() const;

  // Any thread: a cursor at `seq` (clamped to next_seq()); one below oldest_seq() reads as behind.
  Cursor cursor_at(uint64_t seq) const;

  // Any thread: appends raw entries from *cursor on to *out (whole entries, at least one when there is
  // one, about max_bytes at most, never past the block the cursor is in) and advances the cursor.
  // kBehind, with nothing read, when entries from the cursor on were evicted and any of them may have
  // had `bit` (the reader's) in its mask; if none did, the cursor moves on to the oldest entry held.
  // A reader of kEverything is behind whenever anything it had not read was evicted.
  ReadStatus read(Cursor* cursor, std::string* out, size_t max_bytes, uint64_t bit = kEverything) const;

  // Any thread: as read(), but appends only the lines of the record entries with `bit` in their mask,
  // each followed by "\n" (the live flood of one link: one copy, under the lock). *looked_at: the bytes
  // of backlog passed over; *appended: the lines appended; *records (if given): the record entries
  // passed over, owed or not. kBehind as read().
  ReadStatus read_owed(Cursor* cursor, uint64_t bit, std::string* lines, size_t max_bytes,
                       size_t* looked_at, uint64_t* appended, uint64_t* records = nullptr) const;

  // Decodes the entry at the front of *raw (bytes written by read()) and removes it from *raw. False
  // when *raw is empty or does not start with a whole entry.
  static bool next_entry(std::string_view* raw, Entry* entry);
  // Appends one encoded entry to *out (the same layout read() produces).
  static void encode(std::string* out, Kind kind, uint64_t seq, uint64_t mask, std::string_view line);

 private:
  // Per bit of a mask: the seq (less the block's first) of the block's last record owed to it, valid
  // where the bit is in the block's union. A block holds at most kMaxBlockBytes / kEntryHeader
  // entries, or one, so 16 bits hold it.
  using LastOwed = std::array<uint16_t, 64>;
  static_assert(kMaxBlockBytes / kEntryHeader < 0x10000);

  struct Block {
    uint64_t id = 0;
    uint64_t first_seq = 0;
    uint64_t owed = 0;  // the union of its record entries' masks
    LastOwed last_owed{};
    size_t used = 0;
    size_t cap = 0;
    std::unique_ptr<char[]> data;
  };
  // mu_ held: the index in blocks_ of the block holding `seq` (which must be held), and its offset.
  void locate_locked(uint64_t seq, Cursor* cursor) const;
  // mu_ held, oldest <= cursor->seq < next_seq_: fixes up *cursor and returns its block.
  const Block* position_locked(Cursor* cursor) const;
  // mu_ held, cursor->seq below the oldest entry: true (and *cursor moved to the oldest entry) when
  // every entry evicted from cursor->seq on is known and none was owed to `bit` (entries before
  // cursor->seq in the block it was in do not count: the reader has had them).
  bool skip_evicted_locked(Cursor* cursor, uint64_t bit) const;
  // mu_ held: the block a read from *cursor starts in, or nullptr with *status kBehind (entries it
  // may need were evicted) or kOk (nothing new). The common start of read() and read_owed().
  const Block* start_read_locked(Cursor* cursor, uint64_t bit, ReadStatus* status) const;
  struct Evicted {
    uint64_t first_seq;
    uint64_t end_seq;  // one past its last
    uint64_t owed;
    LastOwed last_owed;
  };

  const size_t capacity_;
  const size_t block_bytes_;
  mutable std::mutex mu_;
  std::deque<Block> blocks_;             // guarded by mu_: oldest first
  std::unique_ptr<char[]> spare_;        // guarded by mu_: an evicted block's memory, for reuse
  std::deque<Evicted> evicted_;          // guarded by mu_: the latest evicted blocks, oldest first
  uint64_t next_seq_;                    // guarded by mu_
  std::atomic<uint64_t> published_next_; // next_seq_, readable without mu_
  uint64_t next_block_id_ = 1;           // guarded by mu_
  size_t bytes_ = 0;                     // guarded by mu_: the room of blocks_ (their cap)
  mutable std::condition_variable grew_;
  mutable int waiters_ = 0;              // guarded by mu_: threads in wait_for_seq()
};

}  // namespace herd
