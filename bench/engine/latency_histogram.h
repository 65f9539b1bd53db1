// LatencyHistogram: completion latencies in nanoseconds, in log-linear buckets (each power of
// two split into 64 linear sub-buckets, so any value is kept within 1/64 ≈ 1.6% of itself), with
// fixed memory whatever the run length, like HdrHistogram with two significant digits.
#pragma once

#include <array>
#include <cstdint>
#include <utility>
#include <vector>

#include "util/log_linear_buckets.h"

namespace rf::bench {

class LatencyHistogram {
 public:
  void record(std::uint64_t ns, std::uint64_t times = 1);
  void merge(const LatencyHistogram& other);

  std::uint64_t count() const { return count_; }
  std::uint64_t min() const { return count_ == 0 ? 0 : min_; }
  std::uint64_t max() const { return max_; }
  double mean() const { return count_ == 0 ? 0.0 : static_cast<double>(sum_) / static_cast<double>(count_); }
  // The smallest recorded value v (to bucket precision) such that at least `percent`% of the
  // values are <= v; 0 when empty. percent in (0, 100].
  std::uint64_t percentile(double percent) const;
  // The non-empty buckets as (largest value the bucket holds, count), in increasing order: fio's
  // json+ "bins".
  std::vector<std::pair<std::uint64_t, std::uint64_t>> bins() const;

 private:
  std::array<std::uint64_t, buckets::kCount> buckets_{};
  std::uint64_t count_ = 0;
  std::uint64_t sum_ = 0;
  std::uint64_t min_ = UINT64_MAX;
  std::uint64_t max_ = 0;
};

}  // namespace rf::bench
