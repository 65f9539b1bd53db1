#include "engine/latency_histogram.h"

#include <cmath>

namespace rf::bench {

void LatencyHistogram::record(std::uint64_t ns, std::uint64_t times) {
  if (times == 0) return;
  buckets_[buckets::bucket_of(ns)] += times;
  count_ += times;
  sum_ += ns * times;
  if (ns < min_) min_ = ns;
  if (ns > max_) max_ = ns;
}

void LatencyHistogram::merge(const LatencyHistogram& other) {
  for (unsigned i = 0; i < buckets::kCount; ++i) buckets_[i] += other.buckets_[i];
  count_ += other.count_;
  sum_ += other.sum_;
  if (other.count_ != 0 && other.min_ < min_) min_ = other.min_;
  if (other.max_ > max_) max_ = other.max_;
}

std::uint64_t LatencyHistogram::percentile(double percent) const {
  if (count_ == 0) return 0;
  const auto rank = static_cast<std::uint64_t>(std::ceil(percent / 100.0 * static_cast<double>(count_)));
  const std::uint64_t wanted = rank == 0 ? 1 : rank;
  std::uint64_t seen = 0;
  for (unsigned i = 0; i < buckets::kCount; ++i) {
    seen += buckets_[i];
    if (seen >= wanted) {
      const std::uint64_t bound = buckets::upper_bound_of(i);
      return bound < max_ ? bound : max_;
    }
  }
  return max_;
}

std::vector<std::pair<std::uint64_t, std::uint64_t>> LatencyHistogram::bins() const {
  std::vector<std::pair<std::uint64_t, std::uint64_t>> out;
  for (unsigned i = 0; i < buckets::kCount; ++i) {
    if (buckets_[i] != 0) out.emplace_back(buckets::upper_bound_of(i), buckets_[i]);
  }
  return out;
}

}  // namespace rf::bench
