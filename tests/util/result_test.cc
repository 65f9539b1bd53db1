#include "util/result.h"

#include <string>

#include <gtest/gtest.h>

namespace rf {
namespace {

enum class TestErrc { Bad, Worse };
using TestError = Error<TestErrc>;

Result<int, TestError> parse_positive(int v) {
  if (v <= 0) return unexpected(TestError{TestErrc::Bad, 0, "not positive"});
  return v;
}

Result<void, TestError> check_positive(int v) {
  RF_TRY_VOID(parse_positive(v));
  return {};
}

TEST(ResultTest, HoldsValue) {
  auto r = parse_positive(5);
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(static_cast<bool>(r));
  EXPECT_EQ(*r, 5);
  EXPECT_EQ(r.value(), 5);
  EXPECT_EQ(r.value_or(9), 5);
}

TEST(ResultTest, HoldsError) {
  auto r = parse_positive(-1);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, TestErrc::Bad);
  EXPECT_EQ(r.error().message, "not positive");
  EXPECT_EQ(r.value_or(9), 9);
}

TEST(ResultTest, SameTypeForValueAndErrorStaysDistinct) {
  Result<int, int> value(3);
  Result<int, int> error = unexpected(4);
  ASSERT_TRUE(value);
  ASSERT_FALSE(error);
  EXPECT_EQ(*value, 3);
  EXPECT_EQ(error.error(), 4);
}

TEST(ResultTest, VoidResultAndTryPropagation) {
  EXPECT_TRUE(check_positive(1));
  auto failed = check_positive(0);
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().message, "not positive");
}

TEST(ResultTest, MoveOnlyValue) {
  Result<std::unique_ptr<int>, TestError> r(std::make_unique<int>(7));
  ASSERT_TRUE(r);
  std::unique_ptr<int> taken = std::move(r).value();
  EXPECT_EQ(*taken, 7);
}

}  // namespace
}  // namespace rf
