#include "cli/markdown_table.h"

#include <gtest/gtest.h>

namespace rf::cli {
namespace {

TEST(MarkdownTableTest, PadsColumnsToTheWidestCell) {
  MarkdownTable t({"a", "longer header"});
  t.add_row({"wide cell", "x"});
  EXPECT_EQ(t.render(),
            "| a         | longer header |\n"
            "|-----------|---------------|\n"
            "| wide cell | x             |\n");
}

TEST(MarkdownTableTest, CountsUtf8CharactersNotBytes) {
  MarkdownTable t({"check"});
  t.add_row({"✓ ok"});
  t.add_row({"fail"});
  EXPECT_EQ(t.render(),
            "| check |\n"
            "|-------|\n"
            "| ✓ ok  |\n"
            "| fail  |\n");
}

TEST(MarkdownTableTest, ShortRowsAreFilledWithEmptyCells) {
  MarkdownTable t({"one", "two"});
  t.add_row({"1"});
  EXPECT_EQ(t.render(), "| one | two |\n|-----|-----|\n| 1   |     |\n");
}

}  // namespace
}  // namespace rf::cli
