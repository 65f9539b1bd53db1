#include "restrictions/policy_parser.h"

#include <gtest/gtest.h>

#include "policy_test_util.h"

namespace rf::policy {
namespace {

using test::PolicyText;
using test::with_rule;

std::vector<Diagnostic> errors_of(const std::string& text) {
  auto parsed = parse_policy(text, "p.toml");
  EXPECT_FALSE(parsed) << "expected a refusal for:\n" << text;
  return parsed ? std::vector<Diagnostic>{} : parsed.error();
}

// One diagnostic with `rule`, at `line`, whose message and fix contain the given text.
void expect_one(const std::vector<Diagnostic>& all, const std::string& rule, unsigned line, const std::string& message,
                const std::string& fix = "") {
  const auto found = with_rule(all, rule);
  ASSERT_EQ(found.size(), 1U) << test::dump(all);
  EXPECT_EQ(found[0].severity, Severity::Error);
  EXPECT_EQ(found[0].where.file, "p.toml");
  EXPECT_EQ(found[0].where.line, line) << test::dump(all);
  EXPECT_NE(found[0].message.find(message), std::string::npos) << test::dump(all);
  EXPECT_NE(found[0].fix.find(fix), std::string::npos) << test::dump(all);
}

TEST(PolicyParserTest, ParsesAWellFormedPolicyWithLocations) {
  PolicyText t;
  t.allowed = R"("IO_LINK")";
  t.reg = R"("REGISTER_BUFFERS")";
  auto parsed = parse_policy(t.str(), "p.toml");
  ASSERT_TRUE(parsed) << test::dump(parsed.error());
  EXPECT_EQ(parsed->name, "t");
  EXPECT_EQ(parsed->mode, Mode::Passthrough);
  EXPECT_EQ(parsed->comment, "a test policy");
  ASSERT_EQ(parsed->sqe_opcodes.size(), 3U);
  EXPECT_EQ(parsed->sqe_opcodes[0].value, 4);
  EXPECT_EQ(parsed->sqe_opcodes[0].name, "READ_FIXED");
  EXPECT_EQ(parsed->sqe_opcodes[0].where.line, 8U);
  EXPECT_EQ(parsed->sqe_opcodes[1].where.column, 34U);
  ASSERT_EQ(parsed->required_flags.size(), 1U);
  EXPECT_EQ(parsed->required_flags[0].value, 1);
  EXPECT_EQ(parsed->allowed_flags[0].value, 4);
  EXPECT_EQ(parsed->register_opcodes[0].value, 0);
  EXPECT_EQ(parsed->register_opcodes[0].where.line, 13U);
}

TEST(PolicyParserTest, SyntaxError) {
  expect_one(errors_of("[policy\nname = 1\n"), "toml-syntax", 1, "not valid TOML", "correct the TOML syntax");
}

// toml++ 3.3.0 reaches __builtin_unreachable on this (found by the policy-parser fuzz target;
// upstream marzer/tomlplusplus#190): the parser must refuse non-ASCII before toml++ reads it.
TEST(PolicyParserTest, NonAsciiIsRefusedWithItsPosition) {
  const auto all = errors_of("# ok\nGGGG\xc3\xb8GG:[o\n");
  expect_one(all, "non-ascii", 2, "policy files are ASCII", "plain ASCII");
  EXPECT_EQ(with_rule(all, "non-ascii")[0].where.column, 5U);
  EXPECT_TRUE(with_rule(all, "toml-syntax").empty()) << "toml++ must not see the text";
  // In a comment too: ASCII everywhere is the rule, not just outside strings.
  std::string text = PolicyText{}.str() + "# na\xc3\xafve\n";
  expect_one(errors_of(text), "non-ascii", 14, "policy files are ASCII");
}

TEST(PolicyParserTest, UnknownKeysEverywhere) {
  std::string text = PolicyText{}.str();
  text.insert(text.find("[sqe]"), "extra = 1\n");  // still inside [policy], line 7
  expect_one(errors_of(text), "unknown-key", 7, "unknown key `extra` in [policy]", "[policy] takes: name, format");
  text = PolicyText{}.str() + "alowed_opcodes = []\n";  // inside [register], line 14
  expect_one(errors_of(text), "unknown-key", 14, "unknown key `alowed_opcodes` in [register]", "did you mean `allowed_opcodes`?");
  text = PolicyText{}.str() + "[extra]\n";
  expect_one(errors_of(text), "unknown-key", 14, "unknown key `extra` in the top level");
}

TEST(PolicyParserTest, MissingTablesAndKeys) {
  std::string text = PolicyText{}.str();
  expect_one(errors_of(text.substr(0, text.find("[register]"))), "missing-key", 0, "the [register] table is missing");
  std::string no_required = PolicyText{}.str();
  no_required.erase(no_required.find("required_flags"), no_required.find("allowed_flags") - no_required.find("required_flags"));
  expect_one(errors_of(no_required), "missing-key", 7, "[sqe] has no `required_flags`", "must be explicit, even when empty");
  std::string no_register_list = PolicyText{}.str();
  no_register_list.erase(no_register_list.rfind("allowed_opcodes"));
  expect_one(errors_of(no_register_list), "missing-key", 12, "[register] has no `allowed_opcodes`", "`allowed_opcodes = []`");
  std::string no_comment = PolicyText{}.str();
  no_comment.erase(no_comment.find("comment"), no_comment.find("[sqe]") - no_comment.find("comment"));
  expect_one(errors_of(no_comment), "missing-key", 1, "[policy] has no `comment`");
}

TEST(PolicyParserTest, EmptyCommentAndName) {
  std::string text = PolicyText{}.str();
  text.replace(text.find("\"a test policy\""), 15, "\"  \"");
  expect_one(errors_of(text), "missing-key", 5, "[policy] comment is empty", "say what the policy is for");
  text = PolicyText{}.str();
  text.replace(text.find("name = \"t\""), 10, "name = \"\"");
  expect_one(errors_of(text), "missing-key", 1, "[policy] name is empty");
}

TEST(PolicyParserTest, WrongTypes) {
  std::string text = PolicyText{}.str();
  text.replace(text.find("name = \"t\""), 10, "name = 5");
  expect_one(errors_of(text), "wrong-type", 2, "`name` in [policy] must be a string");
  text = PolicyText{}.str();
  text.replace(text.find("allowed_flags = []"), 18, "allowed_flags = \"IO_LINK\"");
  expect_one(errors_of(text), "wrong-type", 10, "`allowed_flags` in [sqe] must be an array of names");
  PolicyText t;
  t.ops = R"("READ_FIXED", 5)";
  expect_one(errors_of(t.str()), "wrong-type", 8, "every entry of `allowed_opcodes` must be a quoted name");
  text = PolicyText{}.str();
  text.replace(text.find("[sqe]"), 5, "[sqe_renamed]");
  const auto all = errors_of("sqe = 3\n" + text);  // a top-level key where the table belongs
  const auto wrong = with_rule(all, "wrong-type");
  ASSERT_EQ(wrong.size(), 1U) << test::dump(all);
  EXPECT_EQ(wrong[0].where.line, 1U);
  EXPECT_NE(wrong[0].message.find("`sqe` must be a table"), std::string::npos);
}

TEST(PolicyParserTest, FormatVersionAndMode) {
  std::string text = PolicyText{}.str();
  text.replace(text.find("format = 1"), 10, "format = 2");
  expect_one(errors_of(text), "unsupported-format", 3, "this ringfence reads only format 1");
  text = PolicyText{}.str();
  text.erase(text.find("format = 1"), 11);
  expect_one(errors_of(text), "missing-key", 1, "[policy] has no `format`", "format = 1");
  PolicyText t;
  t.mode = "sandboxed";
  expect_one(errors_of(t.str()), "unknown-mode", 4, "unknown mode \"sandboxed\"", "\"passthrough\"");
}

TEST(PolicyParserTest, UnknownNamesGetASuggestion) {
  PolicyText t;
  t.ops = R"("READ_FIXD")";
  expect_one(errors_of(t.str()), "unknown-opcode", 8, "unknown SQE opcode \"READ_FIXD\"", "did you mean \"READ_FIXED\"?");
  t = PolicyText{};
  t.ops = R"("IORING_OP_READV")";
  expect_one(errors_of(t.str()), "unknown-opcode", 8, "unknown SQE opcode", "did you mean \"READV\"?");
  t = PolicyText{};
  t.required = R"("iosqe_fixed_file")";
  expect_one(errors_of(t.str()), "unknown-flag", 9, "unknown SQE flag", "did you mean \"FIXED_FILE\"?");
  t = PolicyText{};
  t.reg = R"("IORING_REGISTER_PROBE")";
  expect_one(errors_of(t.str()), "unknown-opcode", 13, "unknown register opcode", "did you mean \"REGISTER_PROBE\"?");
  t = PolicyText{};
  t.ops = R"("SOMETHING_ELSE")";
  expect_one(errors_of(t.str()), "unknown-opcode", 8, "unknown SQE opcode", "ringfence policy names");
}

TEST(PolicyParserTest, ReportsEveryProblemSortedByPosition) {
  PolicyText t;
  t.mode = "x";
  t.ops = R"("NOPE")";
  t.required = R"("NOPE")";
  const auto all = errors_of(t.str());
  ASSERT_EQ(all.size(), 3U) << test::dump(all);
  EXPECT_EQ(all[0].where.line, 4U);
  EXPECT_EQ(all[1].where.line, 8U);
  EXPECT_EQ(all[2].where.line, 9U);
}

TEST(PolicySuggestTest, NothingCloseMeansNoSuggestion) {
  EXPECT_EQ(suggest_name("READ_FIXED", {"READ_FIXED"}), "READ_FIXED");
  EXPECT_EQ(suggest_name("ZZZZZZZZ", {"READ_FIXED", "NOP"}), "");
}

}  // namespace
}  // namespace rf::policy
