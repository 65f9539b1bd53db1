#include "engine/ratio_interval.h"

#include <gtest/gtest.h>

#include <vector>

namespace rf::bench {
namespace {

TEST(RatioInterval, StudentsQuantilesMatchTheTable) {
  EXPECT_DOUBLE_EQ(student_t_975(1), 12.706);
  EXPECT_DOUBLE_EQ(student_t_975(4), 2.776);
  EXPECT_DOUBLE_EQ(student_t_975(30), 2.042);
  EXPECT_DOUBLE_EQ(student_t_975(1000), 1.960);
  EXPECT_GT(student_t_975(31), student_t_975(200)) << "it falls toward the normal's";
}

TEST(RatioInterval, DriftThatMovesBothRowsAlikeDoesNotWidenTheInterval) {
  // The machine doubled and tripled in speed between rounds; each round the row did twice its
  // baseline. Pairing by round sees a ratio of exactly 2 every time.
  const std::vector<RoundPair> rounds{{100, 50}, {200, 100}, {300, 150}};
  const auto e = paired_ratio(rounds);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->pairs, 3u);
  EXPECT_NEAR(e->ratio, 2.0, 1e-12);
  EXPECT_NEAR(e->low, 2.0, 1e-12);
  EXPECT_NEAR(e->high, 2.0, 1e-12);
  EXPECT_EQ(decide(*e, 1.99, 1e9), Verdict::Met);
  EXPECT_EQ(decide(*e, 2.01, 1e9), Verdict::Missed);
}

TEST(RatioInterval, TheIntervalIsStudentsTOnTheLogRatios) {
  // Ratios 0.9, 1.0 and 1.1: logs -0.10536, 0, 0.09531; mean -0.003349, standard error 0.057952,
  // t(0.975, 2) = 4.303, so exp(-0.003349 ± 0.249368).
  const std::vector<RoundPair> rounds{{90, 100}, {100, 100}, {110, 100}};
  const auto e = paired_ratio(rounds);
  ASSERT_TRUE(e);
  EXPECT_NEAR(e->ratio, 0.99666, 1e-4);
  EXPECT_NEAR(e->low, 0.77673, 1e-4);
  EXPECT_NEAR(e->high, 1.27886, 1e-4);
  EXPECT_EQ(decide(*e, 0.95, 1.05), Verdict::Undecided) << "three noisy rounds cannot say ±5%";
  EXPECT_EQ(decide(*e, 0.5, 2.0), Verdict::Met);
  EXPECT_EQ(decide(*e, 1.5, 1e9), Verdict::Missed);
}

TEST(RatioInterval, MoreRoundsOfTheSameNoiseNarrowIt) {
  std::vector<RoundPair> few, many;
  for (int i = 0; i < 3; ++i) few.push_back({i % 2 == 0 ? 95.0 : 105.0, 100});
  for (int i = 0; i < 20; ++i) many.push_back({i % 2 == 0 ? 95.0 : 105.0, 100});
  const auto a = paired_ratio(few);
  const auto b = paired_ratio(many);
  ASSERT_TRUE(a && b);
  EXPECT_LT(b->high - b->low, (a->high - a->low) / 4);
  EXPECT_EQ(decide(*b, 0.95, 1.05), Verdict::Met);
}

TEST(RatioInterval, RoundsWhereARowDidNoIoAreLeftOutAndOneRunIsNeverDecided) {
  EXPECT_FALSE(paired_ratio(std::vector<RoundPair>{}));
  EXPECT_FALSE(paired_ratio(std::vector<RoundPair>{{0, 100}, {100, 0}}));
  const auto one = paired_ratio(std::vector<RoundPair>{{0, 100}, {150, 100}});
  ASSERT_TRUE(one);
  EXPECT_EQ(one->pairs, 1u);
  EXPECT_DOUBLE_EQ(one->ratio, 1.5);
  EXPECT_EQ(decide(*one, 1.0, 1e9), Verdict::Undecided) << "a single run has no interval, however far it lies";
  EXPECT_EQ(verdict_name(Verdict::Met), "met");
  EXPECT_EQ(verdict_name(Verdict::Missed), "MISSED");
  EXPECT_EQ(verdict_name(Verdict::Undecided), "undecided");
}

}  // namespace
}  // namespace rf::bench
