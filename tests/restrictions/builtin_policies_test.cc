#include "restrictions/builtin_policies.h"

#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "policy_test_util.h"
#include "restrictions/policy_loader.h"
#include "ring/probe.h"
#include "support/kernel_caps.h"

namespace rf::policy {
namespace {

TEST(BuiltinPoliciesTest, TheFourShippedPoliciesExist) {
  std::vector<std::string> names;
  for (const auto& p : builtin_policies()) names.emplace_back(p.name);
  EXPECT_EQ(names, (std::vector<std::string>{"blk-mediated", "blk-passthrough", "blk-passthrough-ro", "blk-virtio"}));
  EXPECT_FALSE(builtin_policy_text("blk-nope"));
}

TEST(BuiltinPoliciesTest, EmbeddedTextIsTheFileInTheRepository) {
  for (const auto& p : builtin_policies()) {
    std::ifstream in(std::string(RF_SOURCE_DIR) + "/restrictions/policies/" + std::string(p.name) + ".toml");
    ASSERT_TRUE(in) << p.name;
    std::ostringstream text;
    text << in.rdbuf();
    EXPECT_EQ(text.str(), p.toml) << p.name << ": rebuild to re-embed the policy";
  }
}

TEST(BuiltinPoliciesTest, EachChecksCleanOfflineAndOnThisKernel) {
  for (const auto& p : builtin_policies()) {
    auto offline = load_checked_policy(p.name, nullptr);
    ASSERT_TRUE(offline) << test::dump(offline.error());
    EXPECT_TRUE(offline->warnings.empty()) << test::dump(offline->warnings);
    EXPECT_EQ(offline->policy.name, p.name);
    EXPECT_EQ(offline->policy.source, "builtin:" + std::string(p.name));
  }
  RF_REQUIRE(rf::test::io_uring_feature());
  for (const auto& p : builtin_policies()) {
    auto online = load_checked_policy(p.name, &running_kernel_opcode_support());
    ASSERT_TRUE(online) << test::dump(online.error());
    EXPECT_TRUE(online->warnings.empty()) << test::dump(online->warnings);
  }
}

TEST(BuiltinPoliciesTest, ModesMatchTheirDataPaths) {
  EXPECT_EQ(load_policy("blk-passthrough")->mode, Mode::Passthrough);
  EXPECT_EQ(load_policy("blk-passthrough-ro")->mode, Mode::Passthrough);
  EXPECT_EQ(load_policy("blk-mediated")->mode, Mode::Mediated);
  EXPECT_EQ(load_policy("blk-virtio")->mode, Mode::Mediated);
}

}  // namespace
}  // namespace rf::policy
