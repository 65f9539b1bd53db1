#include "restrictions/diagnostic.h"

#include <gtest/gtest.h>

namespace rf::policy {
namespace {

TEST(DiagnosticTest, FormatsPositionSeverityRuleAndFix) {
  const Diagnostic d{Severity::Error, {"p.toml", 8, 34}, "unchecked-address", "READV is not allowed", "remove it"};
  EXPECT_EQ(format_diagnostic(d), "p.toml:8:34: error: READV is not allowed [unchecked-address]\n    fix: remove it");
  const Diagnostic w{Severity::Warning, {"p.toml", 0, 0}, "r", "m", ""};
  EXPECT_EQ(format_diagnostic(w), "p.toml: warning: m [r]");
}

TEST(DiagnosticTest, HasErrorsIgnoresWarnings) {
  std::vector<Diagnostic> all{{Severity::Warning, {}, "w", "", ""}};
  EXPECT_FALSE(has_errors(all));
  all.push_back({Severity::Error, {}, "e", "", ""});
  EXPECT_TRUE(has_errors(all));
}

TEST(DiagnosticTest, SortByPositionIsStable) {
  std::vector<Diagnostic> all{{Severity::Error, {"f", 9, 1}, "c", "", ""},
                              {Severity::Error, {"f", 8, 40}, "b", "", ""},
                              {Severity::Error, {"f", 8, 3}, "a", "", ""},
                              {Severity::Error, {"f", 8, 3}, "a2", "", ""}};
  sort_by_position(all);
  EXPECT_EQ(all[0].rule, "a");
  EXPECT_EQ(all[1].rule, "a2");
  EXPECT_EQ(all[2].rule, "b");
  EXPECT_EQ(all[3].rule, "c");
}

}  // namespace
}  // namespace rf::policy
