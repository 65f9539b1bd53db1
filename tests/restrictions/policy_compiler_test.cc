#include "restrictions/policy_compiler.h"

#include <gtest/gtest.h>

#include "policy_test_util.h"
#include "restrictions/policy_loader.h"
#include "restrictions/policy_parser.h"

namespace rf::policy {
namespace {

TEST(PolicyCompilerTest, BlkPassthrough) {
  auto p = load_policy("blk-passthrough");
  ASSERT_TRUE(p);
  const RestrictionSet expected = RestrictionSet{}
                                      .allow(SqeOpcode::ReadFixed)
                                      .allow(SqeOpcode::WriteFixed)
                                      .allow(SqeOpcode::Fsync)
                                      .require_flags(sqe_flag::kFixedFile)
                                      .allow_flags(0);
  EXPECT_EQ(compile_policy(*p), expected);
}

TEST(PolicyCompilerTest, BlkPassthroughReadOnlyAllowsOnlyReads) {
  auto p = load_policy("blk-passthrough-ro");
  ASSERT_TRUE(p);
  const RestrictionSet set = compile_policy(*p);
  EXPECT_TRUE(set.allows(SqeOpcode::ReadFixed));
  EXPECT_FALSE(set.allows(SqeOpcode::WriteFixed));
  EXPECT_FALSE(set.allows(SqeOpcode::Fsync));
  EXPECT_EQ(set.allowed_sqe_op_count(), 1U);
  EXPECT_EQ(set.allowed_register_op_count(), 0U);
}

TEST(PolicyCompilerTest, FlagsAndRegisterOpcodes) {
  test::PolicyText t;
  t.mode = "mediated";
  t.allowed = R"("IO_LINK", "ASYNC")";
  t.reg = R"("REGISTER_BUFFERS", "REGISTER_FILES_UPDATE")";
  auto p = parse_policy(t.str(), "p.toml");
  ASSERT_TRUE(p);
  const RestrictionSet set = compile_policy(*p);
  EXPECT_EQ(set.allowed_flags(), sqe_flag::kIoLink | sqe_flag::kAsync);
  EXPECT_EQ(set.required_flags(), sqe_flag::kFixedFile);
  EXPECT_TRUE(set.allows(RegisterOpcode::RegisterBuffers));
  EXPECT_TRUE(set.allows(RegisterOpcode::RegisterFilesUpdate));
  EXPECT_FALSE(set.allows(RegisterOpcode::RegisterFiles));
}

}  // namespace
}  // namespace rf::policy
