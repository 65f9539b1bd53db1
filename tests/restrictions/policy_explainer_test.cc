#include "restrictions/policy_explainer.h"

#include <gtest/gtest.h>

#include "policy_test_util.h"

#include "restrictions/policy_loader.h"

namespace rf::policy {
namespace {

bool contains(const std::string& text, const std::string& needle) { return text.find(needle) != std::string::npos; }

TEST(PolicyExplainerTest, SaysWhatIsAllowedAndWhatIsNot) {
  auto p = load_policy("blk-passthrough");
  ASSERT_TRUE(p);
  const auto kernel = test::kernel_6_18();
  const std::string text = explain_policy(*p, &kernel, RegisterRestrictionModel::LockedByAnyRestriction);
  EXPECT_TRUE(contains(text, "submit 3 of the 63 SQE opcodes this kernel (6.18-test) supports")) << text;
  EXPECT_TRUE(contains(text, "READ_FIXED       reads a registered file into a registered buffer")) << text;
  EXPECT_TRUE(contains(text, "every SQE MUST set FIXED_FILE")) << text;
  EXPECT_TRUE(contains(text, "submit any other opcode (60)")) << text;
  EXPECT_TRUE(contains(text, "READV, WRITEV")) << text;
  EXPECT_TRUE(contains(text, "set any of IO_DRAIN|IO_LINK|IO_HARDLINK|ASYNC|BUFFER_SELECT|CQE_SKIP_SUCCESS")) << text;
  EXPECT_TRUE(contains(text, "all 36 register opcodes return EACCES")) << text;
  EXPECT_TRUE(contains(text, "address disclosure")) << text;
  EXPECT_TRUE(contains(text, "Restriction table registered with the kernel (5 entries)")) << text;
  EXPECT_TRUE(contains(text, "SQE_FLAGS_REQUIRED     0x01  FIXED_FILE")) << text;
  EXPECT_FALSE(contains(text, "REGISTER_OP")) << text;
  // What no restriction bounds or filters, in words: the opt-in SQPOLL thread is unbounded.
  EXPECT_TRUE(contains(text, "NOTHING bounds them")) << text;
  EXPECT_TRUE(contains(text, "io-wq workers for these opcodes on\n    files and block devices are bounded")) << text;
  EXPECT_TRUE(contains(text, "ioprio, rw_flags (RWF_*), the read/write attribute pointer")) << text;  // not probed
}

TEST(PolicyExplainerTest, APassthroughPolicyListsWhatThisKernelDidWithEachField) {
  auto p = load_policy("blk-passthrough");
  ASSERT_TRUE(p);
  SqeExposure exposure;
  exposure.ran = true;
  exposure.target = "a test file";
  exposure.fields.push_back({"ioprio", "READ_FIXED, WRITE_FIXED", true, "real-time class: EPERM", "pick a class"});
  const std::string text = explain_policy(*p, nullptr, RegisterRestrictionModel::LockedByAnyRestriction, &exposure);
  EXPECT_TRUE(contains(text, "probed on this kernel, against a test file")) << text;
  EXPECT_TRUE(contains(text, "ioprio (READ_FIXED, WRITE_FIXED): interpreted")) << text;
  EXPECT_TRUE(contains(text, "seen: real-time class: EPERM")) << text;
  EXPECT_TRUE(contains(text, "lets a guest: pick a class")) << text;
  auto mediated = load_policy("blk-mediated");
  ASSERT_TRUE(mediated);
  const std::string m = explain_policy(*mediated, nullptr, RegisterRestrictionModel::LockedByAnyRestriction, &exposure);
  EXPECT_FALSE(contains(m, "lets a guest")) << "mediated mode rebuilds every SQE\n" << m;
}

TEST(PolicyExplainerTest, OnLinux7TheLockSentinelIsShown) {
  auto p = load_policy("blk-mediated");
  ASSERT_TRUE(p);
  const std::string text = explain_policy(*p, nullptr, RegisterRestrictionModel::TrackedSeparately);
  EXPECT_TRUE(contains(text, "(6 entries)")) << text;
  EXPECT_TRUE(contains(text, "REGISTER_OP              12  REGISTER_ENABLE_RINGS")) << text;
  EXPECT_TRUE(contains(text, "ringfence knows")) << text;  // offline: no kernel given
  EXPECT_FALSE(contains(text, "address disclosure")) << text;  // mediated guests use guest-physical addresses
}

}  // namespace
}  // namespace rf::policy
