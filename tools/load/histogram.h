// Histogram: an HDR-style log-linear latency histogram (header-only). Values are nanoseconds;
// each power of two is split into 128 linear sub-buckets, so a bucket's width is under 1/128
// (0.8%) of its values. Values below 256 ns are exact; values above 60 s are clamped to 60 s.
// Exact count, sum, min and max are kept beside the buckets. Histograms merge by adding counts.
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>
#include <vector>

namespace herd_load {

class Histogram {
 public:
  static constexpr uint64_t kMaxValue = 60ull * 1000 * 1000 * 1000;  // 60 s in ns
  static constexpr int kSubBits = 7;
  static constexpr uint64_t kSub = 1ull << kSubBits;  // 128 sub-buckets per power of two

  Histogram() : counts_(bucket_index(kMaxValue) + 1, 0) {}

  // Bucket of a value: exact below 2*kSub, then kSub buckets per power of two.
  static size_t bucket_index(uint64_t v) {
    if (v < 2 * kSub) return static_cast<size_t>(v);
    int msb = std::bit_width(v) - 1;  // >= kSubBits + 1
    int shift = msb - kSubBits;       // >= 1
    uint64_t top = v >> shift;        // in [kSub, 2*kSub)
    return static_cast<size_t>(2 * kSub + (shift - 1) * kSub + (top - kSub));
  }

  // Lowest and highest values that land in bucket i.
  static uint64_t bucket_low(size_t i) {
    if (i < 2 * kSub) return i;
    size_t shift = (i - 2 * kSub) / kSub + 1;
    uint64_t top = kSub + (i - 2 * kSub) % kSub;
    return top << shift;
  }
  static uint64_t bucket_high(size_t i) {
    if (i < 2 * kSub) return i;
    size_t shift = (i - 2 * kSub) / kSub + 1;
    return bucket_low(i) + (1ull << shift) - 1;
  }

  void record(uint64_t v) {
    if (v > kMaxValue) {
      v = kMaxValue;
      ++clamped_;
    }
    ++counts_[bucket_index(v)];
    ++count_;
    sum_ += v;
    min_ = std::min(min_, v);
    max_ = std::max(max_, v);
  }

  void merge(const Histogram& o) {
    for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += o.counts_[i];
    count_ += o.count_;
    sum_ += o.sum_;
    clamped_ += o.clamped_;
    min_ = std::min(min_, o.min_);
    max_ = std::max(max_, o.max_);
  }

  // The value at percentile p (0..100): the highest value of the bucket holding the rank
  // ceil(p% of count), capped by the exact max (so p100 is the exact max). 0 when empty.
  uint64_t percentile(double p) const {
    if (count_ == 0) return 0;
    if (p <= 0) return min_;
    double want = p / 100.0 * static_cast<double>(count_);
    uint64_t rank = static_cast<uint64_t>(want);
    if (static_cast<double>(rank) < want) ++rank;
    rank = std::clamp<uint64_t>(rank, 1, count_);
    uint64_t seen = 0;
    for (size_t i = 0; i < counts_.size(); ++i) {
      seen += counts_[i];
      if (seen >= rank) return std::clamp(bucket_high(i), min_, max_);
    }
    return max_;
  }

  uint64_t count() const { return count_; }
  uint64_t min() const { return count_ ? min_ : 0; }
  uint64_t max() const { return max_; }
  uint64_t clamped() const { return clamped_; }
  double mean() const { return count_ ? static_cast<double>(sum_) / static_cast<double>(count_) : 0; }
  // Count per bucket (index as bucket_index); for exports of the whole distribution.
  const std::vector<uint64_t>& counts() const { return counts_; }

 private:
  std::vector<uint64_t> counts_;
  uint64_t count_ = 0;
  uint64_t sum_ = 0;
  uint64_t clamped_ = 0;
  uint64_t min_ = UINT64_MAX;
  uint64_t max_ = 0;
};

}  // namespace herd_load
