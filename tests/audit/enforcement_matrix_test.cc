#include "audit/enforcement_matrix.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "ring/probe.h"
#include "support/kernel_caps.h"

namespace rf {
namespace {

const MatrixRow& row(const MatrixColumn& column, const std::string& check) {
  for (const auto& r : column.rows) {
    if (r.check == check) return r;
  }
  ADD_FAILURE() << "no row " << check;
  static const MatrixRow none;
  return none;
}

RestrictionSet blk(bool writes) {
  RestrictionSet set;
  set.allow(SqeOpcode::ReadFixed).require_flags(sqe_flag::kFixedFile);
  if (writes) set.allow(SqeOpcode::WriteFixed).allow(SqeOpcode::Fsync);
  return set;
}

TEST(EnforcementMatrixTest, EveryCheckPassesForABlockPolicyInBothShapes) {
  RF_REQUIRE(test::restrictions_feature());
  RF_REQUIRE(test::sqpoll_feature());
  RF_REQUIRE(test::no_mmap_feature());
  const auto& kernel = running_kernel_opcode_support();
  for (const RingShape shape : {RingShape::GuestShared, RingShape::Private}) {
    auto column = run_enforcement_matrix("blk", blk(true), shape);
    ASSERT_TRUE(column) << column.error().message;
    for (const auto& r : column->rows) {
      EXPECT_TRUE(r.passed) << r.check << ": " << r.observed << (r.failures.empty() ? "" : " " + r.failures[0]);
    }
    EXPECT_TRUE(column->passed());
    EXPECT_EQ(row(*column, "every denied SQE opcode").observed, fmt::format("{0}/{0}", kernel.sqe_ops.count() - 3));
    EXPECT_EQ(row(*column, "every denied register opcode after enable").observed,
              fmt::format("{0}/{0}", kernel.register_op_count));
    EXPECT_EQ(row(*column, "every allowed SQE opcode runs").observed, "3/3");
    EXPECT_EQ(row(*column, "flag BUFFER_SELECT").observed, "-EOPNOTSUPP");
    EXPECT_EQ(row(*column, "fixed-file index out of range").observed, "-EBADF");
    EXPECT_FALSE(row(*column, "WRITE_FIXED under a read-only policy").applicable);
    EXPECT_EQ(column->self_check.sqe_result, -EACCES);
  }
}

TEST(EnforcementMatrixTest, ReadOnlyPolicyRefusesWritesAndSkipsTheRoundTrip) {
  RF_REQUIRE(test::restrictions_feature());
  auto column = run_enforcement_matrix("ro", blk(false), RingShape::Private);
  ASSERT_TRUE(column) << column.error().message;
  EXPECT_TRUE(column->passed());
  EXPECT_FALSE(row(*column, "WRITE_FIXED then READ_FIXED matches pread").applicable);
  const MatrixRow& ro = row(*column, "WRITE_FIXED under a read-only policy");
  EXPECT_TRUE(ro.applicable);
  EXPECT_EQ(ro.observed, "-EACCES");
}

TEST(EnforcementMatrixTest, AFlagThePolicyAllowsIsNotApplicable) {
  RF_REQUIRE(test::restrictions_feature());
  RestrictionSet set = blk(true);
  set.allow_flags(sqe_flag::kIoLink);
  auto column = run_enforcement_matrix("link", set, RingShape::Private);
  ASSERT_TRUE(column) << column.error().message;
  EXPECT_FALSE(row(*column, "flag IO_LINK").applicable);
  EXPECT_TRUE(row(*column, "flag IO_DRAIN").applicable);
  EXPECT_TRUE(column->passed());
}

TEST(EnforcementMatrixTest, ResultLabels) {
  EXPECT_EQ(cqe_result_label(-EACCES), "-EACCES");
  EXPECT_EQ(cqe_result_label(4096), "4096");
  EXPECT_EQ(cqe_result_label(0), "0");
}

}  // namespace
}  // namespace rf
