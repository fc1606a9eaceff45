// Workload: the simulated clients (IDs, deterministic locations, strictly increasing timestamps,
// whether each has been reported yet) and the text of the requests sent for them, per protocol.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tools/load/options.h"

namespace herd_load {

// "seconds.nnnnnnnnn" for a time in ns since the epoch; returns the length written (<= 32).
size_t format_client_time(uint64_t ns, char* out);

enum class RequestKind : uint8_t { kIamat, kWhatsat };

class Workload {
 public:
  explicit Workload(const Options& options);

  uint32_t clients() const { return static_cast<uint32_t>(ids_.size()); }
  const std::string& id(uint32_t k) const { return ids_[k]; }
  const std::string& location(uint32_t k) const { return locations_[k]; }

  // A timestamp for client k newer than every one handed out before (safe across threads).
  uint64_t next_timestamp(uint32_t k);

  bool reported(uint32_t k) const { return reported_[k].load(std::memory_order_relaxed); }
  void mark_reported(uint32_t k) { reported_[k].store(true, std::memory_order_relaxed); }

  // Appends the request line for client k (IAMAT with timestamp ts, or WHATSAT).
  void append_iamat(std::string* out, uint32_t k, uint64_t ts) const;
  void append_whatsat(std::string* out, uint32_t k) const;

  size_t bound() const { return bound_; }

 private:
  Protocol protocol_;
  std::string radius_;
  size_t bound_;
  std::string redis_key_;
  std::vector<std::string> ids_;
  std::vector<std::string> locations_;  // ISO 6709 "+34.068930-118.445127"
  std::vector<std::string> latitudes_, longitudes_;  // "34.068930", "-118.445127" for redis
  std::unique_ptr<std::atomic<uint64_t>[]> last_ts_;
  std::unique_ptr<std::atomic<bool>[]> reported_;
  // Redis: a second longitude 0.0001 degree (about 10 m) nearer 0, and each client's GEOADD count.
  // Its GEOADDs alternate between the two, so that every one changes the member's score: a GEOADD
  // that changes nothing is not propagated to replicas, where every herd IAMAT is a new record
  // (a newer timestamp) that is stored and flooded.
  std::vector<std::string> other_longitudes_;
  std::unique_ptr<std::atomic<uint32_t>[]> geoadds_;
};

}  // namespace herd_load
