// FloodRouter: the one way a record gets into the table. It decides which neighbours are owed the
// record (flood routing: never the neighbour it came from, never one named in its seen= set), builds
// the line they are sent (the record and the updated seen= set: this server, and the owed neighbours
// whose links are up right now; a neighbour whose link is down is never named, so others still reach
// it by another path), and offers the record to the table. If it is stored, the line goes into the
// backlog (FloodLog) under the client's shard lock, and the links owed it are woken. The links owed
// and the seen= field written are remembered per thread for the last few senders and sets
// (RouteMemo), so the records of an update, which arrive alike, are routed without parsing the set.
//
// Threads: offer() and append_progress() from any thread; set_links() once, before the loops start.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "herd/flood_log.h"
#include "herd/location_table.h"
#include "herd/seen_set.h"
#include "protocol/packed_record.h"
#include "protocol/timestamp.h"

namespace herd {

class PeerLink;

class FloodRouter {
 public:
  // Links beyond this share the last bit of the backlog's mask (they are then sent more than needed).
  static constexpr size_t kMaskBits = 64;
  static uint64_t bit_for(size_t link_index) {
    return uint64_t{1} << (link_index < kMaskBits ? link_index : kMaskBits - 1);
  }

  // `keep_all`: every stored record goes into the backlog, owed to anyone or not (persistence reads it).
  FloodRouter(std::string self, LocationTable& table, FloodLog& backlog, bool keep_all);
  FloodRouter(const FloodRouter&) = delete;  // self_key_ views self_
  FloodRouter& operator=(const FloodRouter&) = delete;

  // Link k owns bit_for(k) of the backlog's mask.
  void set_links(std::vector<PeerLink*> links);
  const std::vector<PeerLink*>& links() const { return links_; }

  struct Result {
    bool stored = false;
    uint64_t seq = 0;  // its backlog seq when stored and kept (0 otherwise)
  };
  // Offers `record` (a normalised AT record, split) for `client_id`, received from neighbour `from` (empty:
  // from a client) with `extra` (the fields after the record on a peer line: seen=). On failure, the
  // record that beat it is appended to *stored (if non-null), as LocationTable::offer does.
  Result offer(std::string_view client_id, protocol::Timestamp time, const protocol::RecordForm& record,
               LocationTable::Source source, std::string_view from, std::string_view extra,
               std::string* stored);

  // Records in the backlog (for persistence) that this server holds `peer`'s history `run` up to `seq`.
  // Returns its seq, or 0 when the backlog is not kept for persistence.
  uint64_t append_progress(std::string_view peer, std::string_view run, uint64_t seq);

 private:
  // The links of `mask` that are up now.
  uint64_t up_links(uint64_t mask) const;

  const std::string self_;
  LocationTable& table_;
  FloodLog& backlog_;
  const bool keep_all_;
  std::vector<PeerLink*> links_;
  // SeenSet keys of self_ and of each link's neighbour (views of their names), made once.
  const SeenSet::Key self_key_;
  std::vector<SeenSet::Key> link_keys_;
  // The key of this router's routes in each thread's RouteMemo (new when the links change).
  uint64_t id_;
};

}  // namespace herd
