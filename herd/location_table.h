// LocationTable: where every known client was last seen, as the AT record that announced it.
// Sharded and lock-striped: a client ID hashes (SipHash-1-3 under a key drawn per table from the
// kernel, so crafted IDs cannot collide on purpose) to one of kShards shards, each a mutex, an
// open-addressing hash map of 8-byte slots (a record's address and 16 bits of its hash) and an arena
// holding the records themselves. No global lock, and no malloc per record: a stored record is a
// 24-byte head and the record's stored form (protocol/packed_record.h: packed, about half its
// length, unless the table was made with packed = false), packed into the shard's arena blocks, so a
// client costs that plus about 20 bytes of slot and padding instead of a heap block each. A client's
// next record that needs the same room (nearly always) is written over the last in place; records
// replaced by one of another size, and evicted ones, leave dead bytes; when those reach half of the
// live ones (and 4 KiB, Arena::kMinDead) the shard copies its live records into one exactly-sized
// block (compaction: at most about two bytes copied per byte that died). Under the lock there is
// only the compare and the copy of a record, the copy of records out, and now and then a block
// allocation, the regrowth of the slot array or a compaction. Never I/O.
//
// Bounded: the table counts its records and their bytes (charge()) as a whole; a store that takes
// either past its bound evicts, in its own shard, the least recently updated records until both are
// within again (an approximate LRU: the oldest of a random sample; the hash spreads clients evenly,
// so each shard's oldest are about as old as any). A shard keeps its newest record, so the bounds
// hold to within a record per shard holding just one (none in practice once the table holds a few
// per shard) and, across loops storing at once, a record or two. An evicted record leaves a tombstone, so no other
// record moves (a scan in progress misses none); tombstones are cleared when the shard is rehashed.
// Probing is bounded too: an insert that would probe further than kMaxProbe slots grows the shard
// (unless it already has 64 slots a record: the probe then stays long rather than the array growing
// without end).
//
// Threads: every public method is thread-safe.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "herd/siphash.h"
#include "protocol/location.h"
#include "protocol/packed_record.h"
#include "protocol/timestamp.h"

namespace herd {

class LocationTable {
 public:
  static constexpr size_t kShards = 256;  // a power of two, well above the number of loops
  // The longest probe an insert accepts before it grows the shard's slot array instead.
  static constexpr size_t kMaxProbe = 64;
  // Records of a shard sampled to pick the one to evict (all of them in a small shard).
  static constexpr size_t kEvictionSample = 8;

  // Who is offering the record, which decides how equal timestamps are settled.
  enum class Source {
    kClient,  // an IAMAT: only a strictly newer timestamp wins
    kPeer,    // a flooded AT line: a newer timestamp wins; an equal one wins if its record's bytes
              // compare greater, so that every server settles a tie on the same record
  };

  // Told of each record that is stored, while the client's shard is still locked: so whatever it
  // records (the backlog) is in the order the table changed for that client. Must not block. Returns
  // the record's stamp: where the backlog stood when it was stored (see scan()).
  class Observer {
   public:
    virtual uint64_t on_stored(std::string_view record) = 0;

   protected:
    ~Observer() = default;
  };

  // Where a scan of the whole table has got to (start with the default value).
  struct ScanPosition {
    size_t shard = 0;
    size_t slot = 0;
    uint64_t generation = 0;  // the shard's slot-array generation when the scan entered it
    bool done = false;
  };
  // Slots looked at under one shard lock by scan().
  static constexpr size_t kScanSlotsPerLock = 512;

  // At most `max_clients` records and `max_bytes` bytes of records (see above); the defaults mean
  // no bound. `key` keys the hash; by default a random one.
  // `packed`: records are stored packed (protocol/packed_record.h: about half the bytes, about 550
  // more instructions per store); otherwise as they are.
  explicit LocationTable(size_t max_clients = std::numeric_limits<size_t>::max(),
                         size_t max_bytes = std::numeric_limits<size_t>::max(),
                         SipKey key = SipKey::random(), bool packed = true);
  ~LocationTable();
  LocationTable(const LocationTable&) = delete;
  LocationTable& operator=(const LocationTable&) = delete;

  // Offers `record` (the AT line without its newline: `AT server diff id location time`, single
  // spaces, as protocol::append_at_record lays it out) for `client_id`, whose report is dated `time`.
  // Returns true when it was stored (which may have evicted other clients). Otherwise the table is
  // unchanged and, if `stored` is non-null, the record that beat it is appended to *stored; a record
  // whose fourth field is not `client_id` is never stored. `observer`, when given, is told of the
  // record if it is stored. Throws std::bad_alloc when memory for the record cannot be had.
  bool offer(std::string_view client_id, protocol::Timestamp time, std::string_view record,
             Source source, std::string* stored, Observer* observer = nullptr);
  // The same, for a record already split (protocol/reply.h returns the records it writes or checks
  // so): the split is not done again.
  bool offer(std::string_view client_id, protocol::Timestamp time, const protocol::RecordForm& record,
             Source source, std::string* stored, Observer* observer = nullptr);

  // Appends the record for `client_id` to *record and sets *where (if non-null) to the location the
  // record states; false when the client is unknown.
  bool lookup(std::string_view client_id, std::string* record, protocol::Location* where) const;

  // True when the record stored for `client_id` is exactly `record` (compared under the shard lock,
  // nothing copied): a catch-up replay skips versions that a newer record has replaced since.
  bool holds(std::string_view client_id, std::string_view record) const;

  // Appends records from *pos on, each followed by "\n", until about max_bytes are appended or the
  // table ends (then pos->done), and advances *pos; returns the number appended. Holds one shard lock
  // at a time for at most kScanSlotsPerLock slots. Every record stored before the scan began and not
  // evicted meanwhile is appended (its newest version, or a newer one) at least once, unless its
  // version's stamp is above `stamped_up_to` (a full transfer leaves out what was stored after it
  // began: that goes live); records stored meanwhile may or may not be, and a shard whose slots were
  // rehashed meanwhile is scanned again from its start. Records offered without an observer have
  // stamp 0.
  size_t scan(ScanPosition* pos, std::string* out, size_t max_bytes,
              uint64_t stamped_up_to = UINT64_MAX) const;

  size_t size() const;
  // Bytes held by records and slot arrays (an estimate that excludes allocator overhead).
  size_t memory_bytes() const;
  // Records evicted to keep within the bounds, since the table was made.
  uint64_t evictions() const { return evictions_.load(std::memory_order_relaxed); }

  // The bytes one record of `record_length` bytes counts against max_bytes (its head and bytes).
  static size_t charge(size_t record_length);

  // Records whose stored form is at least this long get a heap block of their own instead of a place
  // in an arena block.
  static constexpr size_t kAloneBytes = 2048;

 private:
  struct Record;
  class Arena;
  struct Shard;
  class Names;
  uint64_t hash(std::string_view id) const;
  Shard& shard_for(uint64_t h) const;

  const SipKey key_;
  const bool packed_;
  const size_t max_records_;
  const size_t max_bytes_;
  // Records held and their charge(), over every shard: what the bounds are kept by. Relaxed: a store
  // that races another one may evict a record more or less than an exact count would.
  std::atomic<size_t> total_records_{0};
  std::atomic<size_t> total_bytes_{0};
  std::unique_ptr<Shard[]> shards_;
  std::unique_ptr<Names> names_;  // server names of stored records, as one-byte codes
  std::atomic<uint64_t> evictions_{0};
};

}  // namespace herd
