#include "restrictions/policy_loader.h"

#include <unistd.h>

#include <fstream>

#include <gtest/gtest.h>

#include "policy_test_util.h"

namespace rf::policy {
namespace {

TEST(PolicyLoaderTest, LoadsBuiltinsByNameAndFilesByPath) {
  auto builtin = load_policy("blk-mediated");
  ASSERT_TRUE(builtin);
  EXPECT_EQ(builtin->source, "builtin:blk-mediated");

  const std::string path = ::testing::TempDir() + "ringfence-loader-test.toml";
  std::ofstream(path) << test::PolicyText{}.str();
  auto file = load_policy(path);
  ::unlink(path.c_str());
  ASSERT_TRUE(file) << test::dump(file.error());
  EXPECT_EQ(file->source, path);
  EXPECT_EQ(file->sqe_opcodes.size(), 3U);
}

TEST(PolicyLoaderTest, UnknownNameListsTheBuiltins) {
  auto missing = load_policy("blk-passthru");
  ASSERT_FALSE(missing);
  ASSERT_EQ(missing.error().size(), 1U);
  EXPECT_EQ(missing.error()[0].rule, "no-such-policy");
  EXPECT_NE(missing.error()[0].fix.find("blk-mediated, blk-passthrough, blk-passthrough-ro"), std::string::npos);
}

TEST(PolicyLoaderTest, UnreadableFileSaysWhy) {
  auto missing = load_policy("/nonexistent/policy.toml");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error()[0].rule, "unreadable-file");
  EXPECT_NE(missing.error()[0].message.find("No such file or directory"), std::string::npos);
}

TEST(PolicyLoaderTest, ADirectoryIsNotAPolicyFile) {
  for (const char* path : {"/tmp", "/tmp/", "/dev/null"}) {
    auto loaded = load_policy(path);
    ASSERT_FALSE(loaded) << path;
    ASSERT_EQ(loaded.error().size(), 1U) << path << ": one diagnostic, not the parser's missing tables";
    EXPECT_EQ(loaded.error()[0].rule, "not-a-file") << path;
  }
  EXPECT_NE(load_policy("/tmp").error()[0].message.find("is a directory"), std::string::npos);
}

TEST(PolicyLoaderTest, CheckedLoadFailsOnLintErrorsAndKeepsWarnings) {
  const std::string path = ::testing::TempDir() + "ringfence-loader-lint.toml";
  test::PolicyText bad;
  bad.ops = R"("READV")";
  std::ofstream(path) << bad.str();
  auto refused = load_checked_policy(path, nullptr);
  ASSERT_FALSE(refused);
  EXPECT_FALSE(test::with_rule(refused.error(), "unchecked-address").empty());

  test::PolicyText warned;
  warned.allowed = R"("ASYNC")";
  std::ofstream(path, std::ios::trunc) << warned.str();
  auto accepted = load_checked_policy(path, nullptr);
  ::unlink(path.c_str());
  ASSERT_TRUE(accepted) << test::dump(accepted.error());
  ASSERT_EQ(accepted->warnings.size(), 1U);
  EXPECT_EQ(accepted->warnings[0].rule, "async-flag");
}

}  // namespace
}  // namespace rf::policy
