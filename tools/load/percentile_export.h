// Percentile export of a latency Histogram (header-only, unit-tested in test/unit/test_load.cc):
// HdrHistogram's percentile iteration (a fixed number of reporting ticks per halving of the
// distance to 100%) and its .hgrm text layout ("Value Percentile TotalCount 1/(1-Percentile)"),
// which HdrHistogram's plotter and wrk2-style tools read. Pure functions over a histogram that no
// other thread is writing.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "tools/load/histogram.h"

namespace herd_load {

// One line of the export: at least `percentile` % (0..100) of the `count` values seen so far are
// at most `value_ns`.
struct PercentilePoint {
  double percentile;
  uint64_t value_ns;
  uint64_t count;
};

// The distribution as HdrHistogram iterates it: a point whenever the cumulative share reaches the
// next reporting tick, ticks_per_half_distance ticks per halving of the distance to 100%, as far
// as the number of values resolves (1/(1-p) <= count), then a last point at 100% (the exact max).
// Empty for an empty histogram.
inline std::vector<PercentilePoint> percentile_points(const Histogram& h, int ticks_per_half_distance = 5) {
  std::vector<PercentilePoint> out;
  const uint64_t total = h.count();
  if (total == 0) return out;
  const auto& counts = h.counts();
  double next = 0;
  uint64_t seen = 0;
  auto advance = [&next, ticks_per_half_distance] {
    double halvings = std::floor(std::log2(100.0 / (100.0 - next))) + 1;
    next += 100.0 / (ticks_per_half_distance * std::pow(2.0, halvings));
  };
  for (size_t i = 0; i < counts.size() && seen < total; ++i) {
    if (counts[i] == 0) continue;
    seen += counts[i];
    const uint64_t value = std::clamp(Histogram::bucket_high(i), h.min(), h.max());
    const double share = 100.0 * static_cast<double>(seen) / static_cast<double>(total);
    while (next < 100.0 && (share >= next || seen == total)) {
      // Past what the count resolves: stop before the 100% line.
      if (next > 0 && 1.0 / (1.0 - next / 100.0) > static_cast<double>(total)) break;
      out.push_back({next, next == 0 ? h.min() : value, seen});  // 0%: the exact min
      advance();
    }
  }
  out.push_back({100.0, h.max(), total});
  return out;
}

// The .hgrm text of a histogram, values in milliseconds; `title` goes in a leading comment line.
inline std::string format_hgrm(const Histogram& h, const std::string& title) {
  std::string s = "# " + title + "\n# values in milliseconds\n";
  s += "       Value     Percentile TotalCount 1/(1-Percentile)\n\n";
  char line[128];
  for (const PercentilePoint& p : percentile_points(h)) {
    const double ms = static_cast<double>(p.value_ns) / 1e6;
    const double q = p.percentile / 100.0;
    if (p.percentile >= 100.0)
      std::snprintf(line, sizeof line, "%12.4f %14.12f %10llu\n", ms, 1.0, static_cast<unsigned long long>(p.count));
    else
      std::snprintf(line, sizeof line, "%12.4f %14.12f %10llu %14.2f\n", ms, q,
                    static_cast<unsigned long long>(p.count), 1.0 / (1.0 - q));
    s += line;
  }
  std::snprintf(line, sizeof line, "#[Mean    = %12.4f, Max          = %12.4f]\n", h.mean() / 1e6,
                static_cast<double>(h.max()) / 1e6);
  s += line;
  std::snprintf(line, sizeof line, "#[Total count    = %12llu, SubBuckets = %6llu]\n",
                static_cast<unsigned long long>(h.count()), static_cast<unsigned long long>(Histogram::kSub));
  s += line;
  return s;
}

}  // namespace herd_load
