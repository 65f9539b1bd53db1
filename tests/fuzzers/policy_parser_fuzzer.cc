// libFuzzer target: the policy parser, linter, explainer and compiler on arbitrary text.
//
// A policy file comes from a user, not a guest, but ringfence reads policy files it did not
// write (a reviewer's, an integrator's), so the parser must never crash, hang or accept a
// policy that compiles to something other than what it says. Checked on every input:
//   - a refusal carries at least one error, each with a rule, a message and a line that exists;
//   - an accepted policy compiles to exactly the opcodes and flags it lists (and nothing more),
//     and linting and explaining it do not fail;
//   - parsing is deterministic.
#include <algorithm>
#include <bitset>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "restrictions/diagnostic.h"
#include "restrictions/policy_compiler.h"
#include "restrictions/policy_explainer.h"
#include "restrictions/policy_linter.h"
#include "restrictions/policy_parser.h"

namespace {

using namespace rf;
using namespace rf::policy;

void check_refusal(const std::vector<Diagnostic>& diagnostics, std::string_view text) {
  RF_FUZZ_CHECK(has_errors(diagnostics), "a refused policy has at least one error");
  const auto lines = static_cast<std::uint32_t>(std::count(text.begin(), text.end(), '\n') + 1);
  for (const Diagnostic& d : diagnostics) {
    RF_FUZZ_CHECK(!d.rule.empty() && !d.message.empty(), "every diagnostic names its rule and says what is wrong");
    RF_FUZZ_CHECK(d.where.line <= lines, "a diagnostic points at a line of the text");
    RF_FUZZ_CHECK(!format_diagnostic(d).empty(), "every diagnostic formats");
  }
}

void check_accepted(const Policy& p) {
  const RestrictionSet set = compile_policy(p);
  std::bitset<256> listed_sqe, listed_register;
  std::uint8_t required = 0, allowed = 0;
  for (const Entry& e : p.sqe_opcodes) listed_sqe.set(e.value);
  for (const Entry& e : p.register_opcodes) listed_register.set(e.value);
  for (const Entry& e : p.required_flags) {
    RF_FUZZ_CHECK(e.value != 0 && (e.value & (e.value - 1)) == 0, "a flag entry is one bit");
    required = static_cast<std::uint8_t>(required | e.value);
  }
  for (const Entry& e : p.allowed_flags) {
    RF_FUZZ_CHECK(e.value != 0 && (e.value & (e.value - 1)) == 0, "a flag entry is one bit");
    allowed = static_cast<std::uint8_t>(allowed | e.value);
  }
  for (unsigned op = 0; op < 256; ++op) {
    RF_FUZZ_CHECK(set.allows(static_cast<SqeOpcode>(op)) == listed_sqe.test(op),
                  "the compiled set allows exactly the SQE opcodes the policy lists");
    RF_FUZZ_CHECK(set.allows(static_cast<RegisterOpcode>(op)) == listed_register.test(op),
                  "the compiled set allows exactly the register opcodes the policy lists");
  }
  RF_FUZZ_CHECK(set.required_flags() == required, "required flags compile as written");
  RF_FUZZ_CHECK(set.allowed_flags() == allowed, "allowed flags compile as written");
  for (const auto model : {RegisterRestrictionModel::LockedByAnyRestriction, RegisterRestrictionModel::TrackedSeparately}) {
    RF_FUZZ_CHECK(set.registered_rules(model).size() >= set.rules().size(), "registration keeps every rule");
    RF_FUZZ_CHECK(!explain_policy(p, nullptr, model).empty(), "an accepted policy can be explained");
  }
  for (const Diagnostic& d : lint_policy(p, nullptr)) {
    RF_FUZZ_CHECK(!d.rule.empty() && !d.message.empty(), "every lint finding names its rule and says what is wrong");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 64 * 1024) return -1;  // policy files are small; longer inputs only slow the search
  // SAFETY: libFuzzer's `size` bytes at `data`, read as characters (char may alias anything).
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = parse_policy(text, "fuzz.toml");
  auto again = parse_policy(text, "fuzz.toml");
  RF_FUZZ_CHECK(parsed.has_value() == again.has_value(), "parsing is deterministic");
  if (!parsed) {
    check_refusal(parsed.error(), text);
    RF_FUZZ_CHECK(parsed.error().size() == again.error().size(), "parsing is deterministic");
    return 0;
  }
  RF_FUZZ_CHECK(compile_policy(*parsed) == compile_policy(*again), "parsing is deterministic");
  check_accepted(*parsed);
  return 0;
}
