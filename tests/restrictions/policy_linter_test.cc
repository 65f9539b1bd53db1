#include "restrictions/policy_linter.h"

#include <gtest/gtest.h>

#include "policy_test_util.h"
#include "restrictions/opcode_safety.h"
#include "restrictions/policy_parser.h"
#include "ring/opcodes.h"

namespace rf::policy {
namespace {

using test::PolicyText;
using test::with_rule;

std::vector<Diagnostic> lint(const PolicyText& t, const KernelOpcodeSupport* kernel = nullptr) {
  auto parsed = parse_policy(t.str(), "p.toml");
  EXPECT_TRUE(parsed) << test::dump(parsed.error());
  if (!parsed) return {};
  return lint_policy(*parsed, kernel);
}

void expect_rule(const std::vector<Diagnostic>& all, const std::string& rule, Severity severity, unsigned line,
                 const std::string& message, const std::string& fix) {
  const auto found = with_rule(all, rule);
  ASSERT_EQ(found.size(), 1U) << test::dump(all);
  EXPECT_EQ(found[0].severity, severity) << test::dump(all);
  EXPECT_EQ(found[0].where.line, line) << test::dump(all);
  EXPECT_NE(found[0].message.find(message), std::string::npos) << test::dump(all);
  EXPECT_NE(found[0].fix.find(fix), std::string::npos) << test::dump(all);
}

TEST(PolicyLinterTest, TheBlockIoPolicyIsClean) {
  const auto kernel = test::kernel_6_18();
  EXPECT_TRUE(lint(PolicyText{}, &kernel).empty()) << test::dump(lint(PolicyText{}, &kernel));
}

TEST(PolicyLinterTest, PassthroughRefusesReadvNamingItAndWhy) {
  PolicyText t;
  t.ops = R"("READ_FIXED", "READV")";
  const auto all = lint(t);
  EXPECT_TRUE(has_errors(all));
  expect_rule(all, "unchecked-address", Severity::Error, 8, "READV is not allowed in a passthrough policy",
              "remove \"READV\"");
  EXPECT_NE(with_rule(all, "unchecked-address")[0].message.find("host address the kernel does not check"),
            std::string::npos);
}

TEST(PolicyLinterTest, PassthroughRefusesEachRiskClass) {
  struct Case {
    const char* op;
    const char* rule;
  };
  for (const Case& c : {Case{"WRITEV_FIXED", "unchecked-address"}, Case{"URING_CMD", "unchecked-address"},
                        Case{"OPENAT", "creates-descriptors"}, Case{"FILES_UPDATE", "creates-descriptors"},
                        Case{"MSG_RING", "outside-disks"}, Case{"SPLICE", "outside-disks"},
                        Case{"FALLOCATE", "resizes-disk"}, Case{"FTRUNCATE", "resizes-disk"}}) {
    PolicyText t;
    t.ops = fmt::format(R"("READ_FIXED", "{}")", c.op);
    const auto all = lint(t);
    const auto found = with_rule(all, c.rule);
    ASSERT_EQ(found.size(), 1U) << c.op << "\n" << test::dump(all);
    EXPECT_EQ(found[0].severity, Severity::Error);
    EXPECT_NE(found[0].message.find(c.op), std::string::npos);
  }
}

// Every opcode ringfence knows: block I/O passes a passthrough lint, everything else is refused.
TEST(PolicyLinterTest, EveryKnownOpcodeIsClassified) {
  ASSERT_EQ(known_sqe_opcodes().size(), 65U);
  for (const auto& op : known_sqe_opcodes()) {
    PolicyText t;
    t.ops = fmt::format(R"("{}")", op.name);
    const auto all = lint(t);
    const OpcodeSafety& safety = opcode_safety(op.value);
    EXPECT_NE(safety.risk, OpcodeRisk::Unknown) << op.name;
    EXPECT_FALSE(safety.does.empty()) << op.name;
    if (safety.risk == OpcodeRisk::BlockIo) {
      EXPECT_FALSE(has_errors(all)) << op.name << "\n" << test::dump(all);
    } else {
      EXPECT_TRUE(has_errors(all)) << op.name;
      EXPECT_FALSE(safety.why.empty()) << op.name;
    }
  }
  EXPECT_EQ(opcode_safety(200).risk, OpcodeRisk::Unknown);
}

// The parser only accepts names ringfence knows, and each has a safety entry (checked above);
// this rule guards against the two tables drifting apart, so it is exercised directly.
TEST(PolicyLinterTest, AnOpcodeWithoutASafetyEntryIsRefused) {
  auto parsed = parse_policy(PolicyText{}.str(), "p.toml");
  ASSERT_TRUE(parsed);
  parsed->sqe_opcodes.push_back(Entry{100, "op 100", SourceLocation{"p.toml", 8, 50}});
  const auto all = lint_policy(*parsed, nullptr);
  expect_rule(all, "unknown-risk", Severity::Error, 8, "ringfence cannot say what it would let a guest do",
              "remove \"op 100\"");
}

TEST(PolicyLinterTest, PassthroughMustRequireFixedFile) {
  PolicyText t;
  t.required = "";
  expect_rule(lint(t), "fixed-file-not-required", Severity::Error, 7, "must require FIXED_FILE",
              "add \"FIXED_FILE\" to required_flags");
}

TEST(PolicyLinterTest, MediatedModeWarnsInsteadOfRefusing) {
  PolicyText t;
  t.mode = "mediated";
  t.ops = R"("READ_FIXED", "READV")";
  t.required = "";
  const auto all = lint(t);
  EXPECT_FALSE(has_errors(all)) << test::dump(all);
  expect_rule(all, "unchecked-address", Severity::Warning, 8, "defence in depth", "unless the mediator needs it");
  expect_rule(all, "fixed-file-not-required", Severity::Warning, 7, "raw descriptors", "FIXED_FILE");
}

// FALLOCATE is the virtio-blk back-end's DISCARD and WRITE_ZEROES, validated before the private
// ring sees it; FTRUNCATE, the other resizes-disk opcode, still warns.
TEST(PolicyLinterTest, MediatedModeTakesFallocateButWarnsOnFtruncate) {
  PolicyText t;
  t.mode = "mediated";
  t.ops = R"("READ_FIXED", "FALLOCATE", "FTRUNCATE")";
  const auto all = lint(t);
  EXPECT_FALSE(has_errors(all)) << test::dump(all);
  const auto found = with_rule(all, "resizes-disk");
  ASSERT_EQ(found.size(), 1U) << test::dump(all);
  EXPECT_EQ(found[0].severity, Severity::Warning);
  EXPECT_NE(found[0].message.find("FTRUNCATE"), std::string::npos);
}

TEST(PolicyLinterTest, DuplicateEntries) {
  PolicyText t;
  t.ops = R"("READ_FIXED", "FSYNC", "READ_FIXED")";
  t.reg = R"("REGISTER_BUFFERS", "REGISTER_BUFFERS")";
  const auto all = lint(t);
  const auto found = with_rule(all, "duplicate-entry");
  ASSERT_EQ(found.size(), 2U) << test::dump(all);
  EXPECT_NE(found[0].message.find("\"READ_FIXED\" is listed twice in [sqe] allowed_opcodes (first on line 8)"),
            std::string::npos);
  EXPECT_EQ(found[0].where.column, 43U);  // the second occurrence
  EXPECT_NE(found[1].message.find("REGISTER_BUFFERS"), std::string::npos);
  EXPECT_EQ(found[1].fix, "remove one of them");
}

TEST(PolicyLinterTest, FlagInBothLists) {
  PolicyText t;
  t.allowed = R"("FIXED_FILE")";
  expect_rule(lint(t), "flag-in-both-lists", Severity::Error, 10, "FIXED_FILE is both required and allowed",
              "remove \"FIXED_FILE\" from allowed_flags");
}

TEST(PolicyLinterTest, ContradictoryFlags) {
  PolicyText drain;
  drain.required = R"("FIXED_FILE", "IO_DRAIN", "CQE_SKIP_SUCCESS")";
  expect_rule(lint(drain), "contradictory-flags", Severity::Error, 9, "every SQE would fail", "at most one");

  PolicyText select;
  select.allowed = R"("BUFFER_SELECT")";
  expect_rule(lint(select), "contradictory-flags", Severity::Error, 10,
              "none of the allowed opcodes can select a provided buffer", "remove \"BUFFER_SELECT\"");

  PolicyText select_ok;
  select_ok.mode = "mediated";
  select_ok.ops = R"("READ")";
  select_ok.allowed = R"("BUFFER_SELECT")";
  EXPECT_TRUE(with_rule(lint(select_ok), "contradictory-flags").empty());
}

TEST(PolicyLinterTest, OpcodesTheRunningKernelLacks) {
  const auto kernel = test::kernel_6_18();
  PolicyText t;
  t.mode = "mediated";
  t.ops = R"("READ_FIXED", "NOP128")";  // 63: newer than 6.18
  t.reg = R"("REGISTER_BPF_FILTER")";     // 37: newer than 6.18
  const auto all = lint(t, &kernel);
  const auto found = with_rule(all, "unsupported-by-kernel");
  ASSERT_EQ(found.size(), 2U) << test::dump(all);
  EXPECT_NE(found[0].message.find("NOP128 is not supported by the running kernel (6.18-test)"), std::string::npos);
  EXPECT_NE(found[0].fix.find("ringfence probe"), std::string::npos);
  EXPECT_NE(found[1].message.find("REGISTER_BPF_FILTER"), std::string::npos);
  EXPECT_NE(found[1].message.find("0..35"), std::string::npos);
  EXPECT_TRUE(with_rule(lint(t, nullptr), "unsupported-by-kernel").empty());  // offline
}

TEST(PolicyLinterTest, Warnings) {
  PolicyText t;
  t.allowed = R"("ASYNC")";
  t.reg = R"("REGISTER_ENABLE_RINGS")";
  auto all = lint(t);
  EXPECT_FALSE(has_errors(all)) << test::dump(all);
  expect_rule(all, "async-flag", Severity::Warning, 10, "io-wq worker threads", "IORING_REGISTER_IOWQ_MAX_WORKERS");
  expect_rule(all, "no-effect-register-op", Severity::Warning, 13, "no effect after the ring is enabled", "remove");
  PolicyText empty;
  empty.ops = "";
  expect_rule(lint(empty), "empty-opcode-list", Severity::Warning, 7, "every SQE will complete with -EACCES",
              "list the opcodes");
}

}  // namespace
}  // namespace rf::policy
