// FloodRouter implementation.
#include "herd/flood_router.h"

#include <atomic>

#include "herd/peer_link.h"
#include "herd/route_memo.h"

namespace herd {
namespace {

// Appends the flood line to the backlog when the table stores the record (under its shard lock), if
// anyone is owed it or the backlog keeps everything, and stamps the record with where the backlog
// then stands (just past the record's own entry when it has one).
class BacklogAppend final : public LocationTable::Observer {
 public:
  BacklogAppend(FloodLog& backlog, uint64_t mask, std::string_view line, bool append)
      : backlog_(backlog), mask_(mask), line_(line), append_(append) {}
  uint64_t on_stored(std::string_view) override {
    // Appended: just past its own seq. Read from the shared counter instead, another loop's appends
    // in between could stamp it past a full transfer's start, and the transfer's scan would skip a
    // record that the live cursor (starting after it) never sends either.
    if (append_) {
      seq = backlog_.append(FloodLog::Kind::kRecord, mask_, line_);
      return seq + 1;
    }
    return backlog_.next_seq_relaxed();
  }
  uint64_t seq = 0;

 private:
  FloodLog& backlog_;
  const uint64_t mask_;
  const std::string_view line_;
  const bool append_;
};

// A number for each router, and a new one when its links change: the key of its RouteMemo entries.
std::atomic<uint64_t> next_router_id{1};

// This thread's routes (constant-initialised: no guard on each use).
constinit thread_local RouteMemo routes;

}  // namespace

FloodRouter::FloodRouter(std::string self, LocationTable& table, FloodLog& backlog, bool keep_all)
    : self_(std::move(self)),
      table_(table),
      backlog_(backlog),
      keep_all_(keep_all),
      self_key_(SeenSet::key_of(self_)),
      id_(next_router_id.fetch_add(1, std::memory_order_relaxed)) {}

void FloodRouter::set_links(std::vector<PeerLink*> links) {
  links_ = std::move(links);
  link_keys_.clear();
  for (const PeerLink* link : links_) link_keys_.push_back(SeenSet::key_of(link->peer_name()));
  id_ = next_router_id.fetch_add(1, std::memory_order_relaxed);
}

FloodRouter::Result FloodRouter::offer(std::string_view client_id, protocol::Timestamp time,
                                       const protocol::RecordForm& record, LocationTable::Source source,
                                       std::string_view from, std::string_view extra,
                                       std::string* stored) {
  // Routes are remembered only while each link has a bit of its own (a shared bit could not tell
  // which of its links were up).
  const bool memo = links_.size() <= kMaskBits;
  RouteMemo::Route* route = memo ? routes.find(id_, from, extra) : nullptr;
  thread_local std::string line;
  line.clear();
  uint64_t mask = 0;
  bool routed = false;  // the mask known, and the line written if one is owed
  if (route != nullptr) {
    mask = route->owed;
    if (mask == 0 && !keep_all_) {
      routed = true;
    } else if (route->has_field && route->field_up == up_links(mask)) {
      line.assign(record.record()).append(route->field());
      routed = true;
    }
  }
  if (!routed) {
    SeenSet seen = SeenSet::parse(extra);
    if (route == nullptr) {
      // `from` is not added to the set: only what a sender says of itself is trusted (a sender
      // that speaks seen= always lists itself), so a peer that is not who its hello says, or a
      // server without seen=, can never keep a record from anyone. It is only never sent the
      // record back.
      for (size_t k = 0; k < links_.size(); ++k) {
        if (link_keys_[k].name != from && !seen.contains(link_keys_[k])) mask |= bit_for(k);
      }
      if (memo) route = routes.put(id_, from, extra, mask);
    }
    if (mask != 0 || keep_all_) {
      // The set the line carries on: this server, then the neighbours it is sent to. (Most
      // receivers in a herd owe no one the record and keep no backlog: they never build it.)
      // Only neighbours we can reach now count as served; the others stay open to other paths.
      seen.add(self_key_);
      const uint64_t up = up_links(mask);
      for (size_t k = 0; k < links_.size(); ++k) {
        // With a bit of its own, a link sent the record is not in the set (that is why it is owed
        // the record); links are to distinct neighbours. (With a bit per link, `up` says which, as
        // read once: the field and its key agree.) The links sharing the last bit are all sent it
        // when any of them is owed it, also one the set names already or the sender: looked up.
        const bool sent = memo ? (up & bit_for(k)) != 0 : (mask & bit_for(k)) && links_[k]->up();
        if (!sent) continue;
        if (memo || k + 1 < kMaskBits) {
          seen.add_absent(link_keys_[k]);
        } else {
          seen.add(link_keys_[k]);
        }
      }
      line.assign(record.record());
      const size_t at = line.size();
      seen.append_field(line);
      if (route != nullptr) RouteMemo::set_field(route, up, std::string_view(line).substr(at));
    }
  }
  Result result;
  const bool append_it = mask != 0 || keep_all_;
  BacklogAppend append(backlog_, mask, line, append_it);
  result.stored = table_.offer(client_id, time, record, source, stored, &append);
  result.seq = append.seq;
  if (result.stored) {
    for (size_t k = 0; k < links_.size(); ++k) {
      if (mask & bit_for(k)) links_[k]->notify();
    }
  }
  return result;
}

uint64_t FloodRouter::up_links(uint64_t mask) const {
  uint64_t up = 0;
  for (size_t k = 0; k < links_.size(); ++k) {
    if ((mask & bit_for(k)) && links_[k]->up()) up |= bit_for(k);
  }
  return up;
}

uint64_t FloodRouter::append_progress(std::string_view peer, std::string_view run, uint64_t seq) {
  if (!keep_all_) return 0;
  std::string line;
  line.append(peer).push_back(' ');
  line.append(run).push_back(' ');
  line.append(std::to_string(seq));
  return backlog_.append(FloodLog::Kind::kProgress, 0, line);
}

}  // namespace herd
