// LocationTable: where every known client was last seen, as the AT record that announced it.
// Sharded and lock-striped: a client ID hashes to one of kShards shards, each a mutex and an
// open-addressing hash map from client ID to a single heap block holding the record. No global lock;
// a shard lock is held only to compare and swap a record pointer or copy a record out, never across
// I/O or allocation.
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

  LocationTable();
  ~LocationTable();
  LocationTable(const LocationTable&) = delete;
  LocationTable& operator=(const LocationTable&) = delete;

  // Offers `record` (the AT line without its newline: `AT server diff id location time`, single
  // spaces) for `client_id`, whose report is dated `time`. Returns true when it was stored. Otherwise the table is unchanged and,
  // if `stored` is non-null, the record that beat it is appended to *stored.
  bool offer(std::string_view client_id, protocol::Timestamp time, std::string_view record,
             Source source, std::string* stored);

  // Appends the record for `client_id` to *record and sets *where (if non-null) to the location the
  // record states; false when the client is unknown.
  bool lookup(std::string_view client_id, std::string* record, protocol::Location* where) const;

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
