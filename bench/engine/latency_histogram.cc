#include "engine/latency_histogram.h"

#include <bit>
#include <cmath>

namespace rf::bench {

// Values below 64 get one bucket each; above, the top bit picks a group of 64 buckets and the
// next 6 bits the bucket within it.
unsigned LatencyHistogram::bucket_of(std::uint64_t ns) {
  if (ns < kSub) return static_cast<unsigned>(ns);
  const unsigned top = 63u - static_cast<unsigned>(std::countl_zero(ns));  // >= kSubBits
  const unsigned shift = top - kSubBits;
  const auto sub = static_cast<unsigned>((ns >> shift) & (kSub - 1));
  return (shift + 1) * kSub + sub;
}

std::uint64_t LatencyHistogram::upper_bound_of(unsigned bucket) {
  if (bucket < kSub) return bucket;
  const unsigned shift = bucket / kSub - 1;
  const std::uint64_t sub = bucket % kSub;
  const std::uint64_t low = (kSub + sub) << shift;
  return low + ((std::uint64_t{1} << shift) - 1);
}

void LatencyHistogram::record(std::uint64_t ns) {
  ++buckets_[bucket_of(ns)];
  ++count_;
  sum_ += ns;
  if (ns < min_) min_ = ns;
  if (ns > max_) max_ = ns;
}

void LatencyHistogram::merge(const LatencyHistogram& other) {
  for (unsigned i = 0; i < kBuckets; ++i) buckets_[i] += other.buckets_[i];
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
  for (unsigned i = 0; i < kBuckets; ++i) {
    seen += buckets_[i];
    if (seen >= wanted) {
      const std::uint64_t bound = upper_bound_of(i);
      return bound < max_ ? bound : max_;
    }
  }
  return max_;
}

}  // namespace rf::bench
