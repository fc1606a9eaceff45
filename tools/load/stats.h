// Stats: what one generator thread measured (latency histogram, reply and error counts, the
// first few offending replies); threads' stats merge into the run's totals.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "tools/load/error_kind.h"
#include "tools/load/histogram.h"

namespace herd_load {

struct Stats {
  Histogram latency;     // measured replies, from intended send time to reply
  Histogram latency_iamat, latency_whatsat;  // the same, per command (GEOADD / GEOSEARCH for redis)
  uint64_t sent = 0;     // requests written (all phases)
  uint64_t replies = 0;  // measured replies (good or bad)
  // Replies that arrived within the measured window, whenever their request was sent: with
  // latencies near the window's length, `replies` (requests sent in the window and answered in
  // it) undercounts the rate, and this does not.
  uint64_t arrived = 0;
  uint64_t ok = 0;       // measured good replies
  uint64_t iamat_ok = 0;
  uint64_t whatsat_ok = 0;
  uint64_t stale = 0;           // IAMAT answered with a newer stored record (valid)
  uint64_t status_not_ok = 0;   // WHATSAT replies whose status is not OK/ZERO_RESULTS (valid)
  uint64_t results_total = 0;   // places (or redis members) in good WHATSAT replies
  uint64_t seeded = 0;          // seed IAMATs answered
  uint64_t unfinished = 0;      // in flight when the run ended (not errors)
  uint64_t bytes_out = 0, bytes_in = 0;
  std::array<uint64_t, kErrorKindCount> errors{};
  std::vector<std::string> samples;  // the first few offending replies, described
  size_t max_samples = 5;

  void add_error(ErrorKind kind, const std::string& description) {
    ++errors[static_cast<size_t>(kind)];
    if (samples.size() < max_samples)
      samples.push_back(std::string(error_kind_name(kind)) + ": " + description);
  }

  uint64_t total_errors() const {
    uint64_t n = 0;
    for (uint64_t e : errors) n += e;
    return n;
  }

  void merge(const Stats& o) {
    latency.merge(o.latency);
    latency_iamat.merge(o.latency_iamat);
    latency_whatsat.merge(o.latency_whatsat);
    sent += o.sent;
    replies += o.replies;
    arrived += o.arrived;
    ok += o.ok;
    iamat_ok += o.iamat_ok;
    whatsat_ok += o.whatsat_ok;
    stale += o.stale;
    status_not_ok += o.status_not_ok;
    results_total += o.results_total;
    seeded += o.seeded;
    unfinished += o.unfinished;
    bytes_out += o.bytes_out;
    bytes_in += o.bytes_in;
    for (size_t i = 0; i < errors.size(); ++i) errors[i] += o.errors[i];
    for (const auto& s : o.samples)
      if (samples.size() < max_samples) samples.push_back(s);
  }
};

}  // namespace herd_load
