#include "ring/restriction.h"

#include <gtest/gtest.h>

#include "ring/restriction_encoding.h"

namespace rf {
namespace {

RestrictionSet blk() {
  RestrictionSet set;
  set.allow(SqeOpcode::WriteFixed).allow(SqeOpcode::ReadFixed).allow(SqeOpcode::Fsync).require_flags(sqe_flag::kFixedFile);
  return set;
}

TEST(RestrictionSetTest, EmptySetDeniesEverything) {
  RestrictionSet set;
  for (unsigned op = 0; op < 256; ++op) {
    EXPECT_FALSE(set.allows(static_cast<SqeOpcode>(op)));
    EXPECT_FALSE(set.allows(static_cast<RegisterOpcode>(op)));
  }
  EXPECT_TRUE(set.permits_flags(0));
  EXPECT_FALSE(set.permits_flags(sqe_flag::kFixedFile));
}

TEST(RestrictionSetTest, FlagRuleMatchesTheKernel) {
  RestrictionSet set;
  set.require_flags(sqe_flag::kFixedFile).allow_flags(sqe_flag::kIoLink);
  EXPECT_TRUE(set.permits_flags(sqe_flag::kFixedFile));
  EXPECT_TRUE(set.permits_flags(sqe_flag::kFixedFile | sqe_flag::kIoLink));
  EXPECT_FALSE(set.permits_flags(sqe_flag::kIoLink));  // required flag missing
  EXPECT_FALSE(set.permits_flags(sqe_flag::kFixedFile | sqe_flag::kAsync));  // outside allowed|required
}

TEST(RestrictionSetTest, RulesAreCanonicalAndAlwaysCarryBothFlagRules) {
  const auto rules = blk().rules();
  ASSERT_EQ(rules.size(), 5U);
  EXPECT_EQ(rules[0], RestrictionRule(AllowSqeOp{SqeOpcode::Fsync}));
  EXPECT_EQ(rules[1], RestrictionRule(AllowSqeOp{SqeOpcode::ReadFixed}));
  EXPECT_EQ(rules[2], RestrictionRule(AllowSqeOp{SqeOpcode::WriteFixed}));
  EXPECT_EQ(rules[3], RestrictionRule(AllowSqeFlags{0}));
  EXPECT_EQ(rules[4], RestrictionRule(RequireSqeFlags{sqe_flag::kFixedFile}));
}

TEST(RestrictionEncodingTest, EncodesOneEntryPerRule) {
  RestrictionSet set = blk();
  set.allow(RegisterOpcode::RegisterBuffers);
  const auto raw = encode_restrictions(set, RegisterRestrictionModel::LockedByAnyRestriction);
  ASSERT_EQ(raw.size(), 6U);
  EXPECT_EQ(raw[0].opcode, IORING_RESTRICTION_SQE_OP);
  EXPECT_EQ(raw[0].sqe_op, IORING_OP_FSYNC);
  EXPECT_EQ(raw[3].opcode, IORING_RESTRICTION_SQE_FLAGS_ALLOWED);
  EXPECT_EQ(raw[3].sqe_flags, 0);
  EXPECT_EQ(raw[4].opcode, IORING_RESTRICTION_SQE_FLAGS_REQUIRED);
  EXPECT_EQ(raw[4].sqe_flags, IOSQE_FIXED_FILE);
  EXPECT_EQ(raw[5].opcode, IORING_RESTRICTION_REGISTER_OP);
  EXPECT_EQ(raw[5].register_op, IORING_REGISTER_BUFFERS);
  for (const auto& r : raw) {
    EXPECT_EQ(r.resv, 0);
    EXPECT_EQ(r.resv2[0] | r.resv2[1] | r.resv2[2], 0U);
  }
}

TEST(RestrictionEncodingTest, EmptyRegisterAllowlistOnLinux7GetsTheLockSentinel) {
  const auto old_kernel = encode_restrictions(blk(), RegisterRestrictionModel::LockedByAnyRestriction);
  const auto new_kernel = encode_restrictions(blk(), RegisterRestrictionModel::TrackedSeparately);
  EXPECT_EQ(old_kernel.size(), 5U);
  ASSERT_EQ(new_kernel.size(), 6U);
  EXPECT_EQ(new_kernel.back().opcode, IORING_RESTRICTION_REGISTER_OP);
  EXPECT_EQ(new_kernel.back().register_op, IORING_REGISTER_ENABLE_RINGS);
  // A set that lists a register opcode needs no sentinel.
  RestrictionSet with_reg = blk();
  with_reg.allow(RegisterOpcode::RegisterBuffers);
  EXPECT_EQ(encode_restrictions(with_reg, RegisterRestrictionModel::TrackedSeparately).size(), 6U);
}

TEST(RestrictionModelTest, FromKernelRelease) {
  EXPECT_EQ(register_restriction_model_for("6.18.44-fc-v669"), RegisterRestrictionModel::LockedByAnyRestriction);
  EXPECT_EQ(register_restriction_model_for("5.10.0"), RegisterRestrictionModel::LockedByAnyRestriction);
  EXPECT_EQ(register_restriction_model_for("7.0.0-rc1"), RegisterRestrictionModel::TrackedSeparately);
  EXPECT_EQ(register_restriction_model_for("garbage"), RegisterRestrictionModel::TrackedSeparately);
  EXPECT_EQ(register_restriction_model_for(nullptr), RegisterRestrictionModel::TrackedSeparately);
}

}  // namespace
}  // namespace rf
