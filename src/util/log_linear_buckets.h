// Log-linear histogram buckets: values below 64 get one bucket each; above, each power of two is
// split into 64 linear sub-buckets, so a bucket's bounds are within 1/64 (≈1.6%) of any value in
// it (HdrHistogram with two significant digits). Header-only with no includes, so both the
// host's LatencyHistogram and the freestanding guest benchmark use the same buckets.
#pragma once

namespace rf::buckets {

using u64 = unsigned long long;
static_assert(sizeof(u64) == 8);

inline constexpr unsigned kSubBits = 6;
inline constexpr unsigned kSub = 1u << kSubBits;
inline constexpr unsigned kCount = (64 - kSubBits + 1) * kSub;  // covers every 64-bit value

constexpr unsigned bucket_of(u64 value) {
  if (value < kSub) return static_cast<unsigned>(value);
  const unsigned top = 63u - static_cast<unsigned>(__builtin_clzll(value));  // >= kSubBits
  const unsigned shift = top - kSubBits;
  const auto sub = static_cast<unsigned>((value >> shift) & (kSub - 1));
  return (shift + 1) * kSub + sub;
}

// The largest value bucket `b` holds (b < kCount).
constexpr u64 upper_bound_of(unsigned b) {
  if (b < kSub) return b;
  const unsigned shift = b / kSub - 1;
  const u64 sub = b % kSub;
  const u64 low = (kSub + sub) << shift;
  return low + ((u64{1} << shift) - 1);
}

static_assert(bucket_of(~u64{0}) == kCount - 1);
static_assert(upper_bound_of(kCount - 1) == ~u64{0});
static_assert(bucket_of(upper_bound_of(1000)) == 1000 && bucket_of(upper_bound_of(1000) + 1) == 1001);

}  // namespace rf::buckets
