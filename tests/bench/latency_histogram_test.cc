#include "engine/latency_histogram.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include <gtest/gtest.h>

namespace rf::bench {
namespace {

TEST(LatencyHistogram, SmallValuesAreExact) {
  LatencyHistogram h;
  for (std::uint64_t v = 1; v <= 50; ++v) h.record(v);
  EXPECT_EQ(h.count(), 50u);
  EXPECT_EQ(h.min(), 1u);
  EXPECT_EQ(h.max(), 50u);
  EXPECT_EQ(h.percentile(50), 25u);
  EXPECT_EQ(h.percentile(100), 50u);
  EXPECT_DOUBLE_EQ(h.mean(), 25.5);
}

TEST(LatencyHistogram, LargeValuesKeepTwoSignificantDigits) {
  // Against the exact percentiles of a known distribution: within 1/64 of the true value.
  std::vector<std::uint64_t> values;
  std::mt19937_64 rng(7);
  LatencyHistogram h;
  for (int i = 0; i < 100000; ++i) {
    const std::uint64_t v = 1000 + rng() % 10'000'000;  // 1 µs .. 10 ms
    values.push_back(v);
    h.record(v);
  }
  std::sort(values.begin(), values.end());
  for (double p : {50.0, 90.0, 99.0, 99.9}) {
    const auto exact = values[static_cast<std::size_t>(std::ceil(p / 100 * static_cast<double>(values.size()))) - 1];
    const auto got = h.percentile(p);
    EXPECT_GE(got, exact) << "p" << p;
    EXPECT_LE(static_cast<double>(got), static_cast<double>(exact) * (1.0 + 1.0 / 64)) << "p" << p;
  }
}

TEST(LatencyHistogram, HandlesTheExtremesAndMerges) {
  LatencyHistogram a;
  EXPECT_EQ(a.percentile(99), 0u);  // empty
  a.record(0);
  a.record(UINT64_MAX);
  EXPECT_EQ(a.max(), UINT64_MAX);
  EXPECT_EQ(a.percentile(100), UINT64_MAX);
  EXPECT_EQ(a.percentile(50), 0u);
  LatencyHistogram b;
  b.record(500);
  a.merge(b);
  EXPECT_EQ(a.count(), 3u);
  EXPECT_EQ(a.min(), 0u);
  EXPECT_GE(a.percentile(60), 500u);  // to bucket precision: within 1/64
  EXPECT_LE(a.percentile(60), 500u + 500u / 64);
}

TEST(LatencyHistogram, RecordingAValueManyTimesIsRecordingItThatOften) {
  LatencyHistogram many, one_by_one;
  many.record(1000, 5);
  many.record(70, 0);  // nothing
  for (int i = 0; i < 5; ++i) one_by_one.record(1000);
  EXPECT_EQ(many.count(), 5u);
  EXPECT_EQ(many.min(), 1000u);
  EXPECT_DOUBLE_EQ(many.mean(), one_by_one.mean());
  for (double p : {1.0, 50.0, 100.0}) EXPECT_EQ(many.percentile(p), one_by_one.percentile(p)) << p;
}

}  // namespace
}  // namespace rf::bench
