#include "util/checked_math.h"

#include <cstdint>
#include <limits>

#include <gtest/gtest.h>

namespace rf {
namespace {

constexpr auto kMax = std::numeric_limits<std::uint64_t>::max();

TEST(CheckedMathTest, AddDetectsOverflowAtTheBoundary) {
  EXPECT_EQ(checked_add<std::uint64_t>(kMax - 1, 1), kMax);
  EXPECT_FALSE(checked_add<std::uint64_t>(kMax, 1));
  EXPECT_FALSE(checked_add<std::uint32_t>(0xffff'ffffU, 1U));
}

TEST(CheckedMathTest, MulDetectsOverflow) {
  EXPECT_EQ(checked_mul<std::uint64_t>(1ULL << 32, (1ULL << 32) - 1), kMax - (1ULL << 32) + 1);
  EXPECT_FALSE(checked_mul<std::uint64_t>(1ULL << 32, 1ULL << 32));
}

TEST(CheckedMathTest, AlignUp) {
  EXPECT_EQ(checked_align_up<std::uint64_t>(0, 4096), 0U);
  EXPECT_EQ(checked_align_up<std::uint64_t>(1, 4096), 4096U);
  EXPECT_EQ(checked_align_up<std::uint64_t>(4096, 4096), 4096U);
  EXPECT_FALSE(checked_align_up<std::uint64_t>(kMax - 10, 4096));
  EXPECT_TRUE(is_power_of_two(4096));
  EXPECT_FALSE(is_power_of_two(0));
  EXPECT_FALSE(is_power_of_two(12));
}

}  // namespace
}  // namespace rf
