// LocationTable: where every known client was last seen, as the AT record that announced it.
// Sharded and lock-striped: a client ID hashes to one of kShards shards, each a mutex and an
// open-addressing hash map from client ID to a single heap block holding the record. No global lock;
// a shard lock is held only to compare and swap a record pointer (and tell the observer), or to copy
// records out, never across I/O. The new record's block is allocated before the lock; growing a
// shard's slot array reallocates under it (rarely: each doubling).
//
// Threads: every public method is thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "protocol/location.h"
#include "protocol/timestamp.h"

namespace herd {

class LocationTable {
 public:
  static constexpr size_t kShards = 256;  // a power of two, well above the number of loops

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

  LocationTable();
  ~LocationTable();
  LocationTable(const LocationTable&) = delete;
  LocationTable& operator=(const LocationTable&) = delete;

  // Offers `record` (the AT line without its newline: `AT server diff id location time`, single
  // spaces) for `client_id`, whose report is dated `time`. Returns true when it was stored. Otherwise the table is unchanged and,
  // if `stored` is non-null, the record that beat it is appended to *stored.
  // `observer`, when given, is told of the record if it is stored.
  bool offer(std::string_view client_id, protocol::Timestamp time, std::string_view record,
             Source source, std::string* stored, Observer* observer = nullptr);

  // Appends the record for `client_id` to *record and sets *where (if non-null) to the location the
  // record states; false when the client is unknown.
  bool lookup(std::string_view client_id, std::string* record, protocol::Location* where) const;

  // True when the record stored for `client_id` is exactly `record` (compared under the shard lock,
  // nothing copied): a catch-up replay skips versions that a newer record has replaced since.
  bool holds(std::string_view client_id, std::string_view record) const;

  // Appends records from *pos on, each followed by "\n", until about max_bytes are appended or the
  // table ends (then pos->done), and advances *pos; returns the number appended. Holds one shard lock
  // at a time for at most kScanSlotsPerLock slots. Every record stored before the scan began is
  // appended (its newest version, or a newer one) at least once, unless its version's stamp is above
  // `stamped_up_to` (a full transfer leaves out what was stored after it began: that goes live);
  // records stored meanwhile may or may not be, and a shard whose slots were rehashed meanwhile is
  // scanned again from its start. Records offered without an observer have stamp 0.
  size_t scan(ScanPosition* pos, std::string* out, size_t max_bytes,
              uint64_t stamped_up_to = UINT64_MAX) const;

  size_t size() const;
  // Bytes held by records and slot arrays (an estimate that excludes allocator overhead).
  size_t memory_bytes() const;

 private:
  struct Record;
  struct Shard;
  static uint64_t hash(std::string_view id);
  Shard& shard_for(uint64_t h) const;

  std::unique_ptr<Shard[]> shards_;
};

}  // namespace herd
