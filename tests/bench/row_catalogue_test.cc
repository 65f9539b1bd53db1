#include "engine/row_catalogue.h"

#include <set>
#include <sstream>

#include <gtest/gtest.h>

namespace rf::bench {
namespace {

std::vector<std::string> split(const std::string& names) {
  std::vector<std::string> out;
  std::stringstream in(names);
  for (std::string name; std::getline(in, name, ',');) out.push_back(name.substr(name.find_first_not_of(' ')));
  return out;
}

TEST(RowCatalogue, EveryNamedRowResolvesAndItsBaselineIsARow) {
  const std::vector<std::string> names = split(row_names());
  ASSERT_EQ(names.size(), 11u) << row_names();
  std::set<std::string> seen;
  for (const std::string& name : names) {
    EXPECT_TRUE(seen.insert(name).second) << name;
    const auto row = row_from_name(name);
    ASSERT_TRUE(row) << name;
    EXPECT_EQ(row->name, name);
    EXPECT_EQ(int(row->host.has_value()) + int(row->guest.has_value()) + int(row->kvm.has_value()), row->is_fio() ? 0 : 1)
        << name << " is exactly one kind of row";
    if (name == "bare") {
      EXPECT_TRUE(row->baseline.empty()) << "bare is the baseline of them all";
    } else {
      EXPECT_TRUE(row_from_name(row->baseline)) << name << " is compared with " << row->baseline;
      EXPECT_NE(row->baseline, name);
    }
  }
  EXPECT_FALSE(row_from_name("bare-sqpol"));
  EXPECT_FALSE(row_from_name(""));
}

TEST(RowCatalogue, EachRowIsComparedWithTheSameRingShapeWithoutWhatItAdds) {
  EXPECT_EQ(row_from_name("restricted")->baseline, "bare-sqpoll");
  EXPECT_EQ(row_from_name("passthrough")->baseline, "bare") << "its device thread submits without SQPOLL";
  EXPECT_EQ(row_from_name("passthrough-sqpoll")->baseline, "bare-sqpoll");
  EXPECT_EQ(row_from_name("mediated")->baseline, "bare");
  EXPECT_EQ(row_from_name("kvm-mediated")->baseline, "mediated") << "a KVM row against its process-guest row";
  EXPECT_EQ(row_from_name("fio")->baseline, "bare-sqpoll");
  EXPECT_TRUE(row_from_name("fio")->is_fio());
}

TEST(PerformanceTargets, NameRowsOfTheCatalogueAndDecideAtTheirBounds) {
  ASSERT_FALSE(performance_targets().empty());
  for (const PerformanceTarget& t : performance_targets()) {
    EXPECT_TRUE(row_from_name(t.numerator)) << t.text;
    EXPECT_TRUE(row_from_name(t.denominator)) << t.text;
    EXPECT_TRUE(t.met_by(t.low)) << t.text << ": the bound itself is met";
    EXPECT_FALSE(t.met_by(t.low - 0.001)) << t.text;
    EXPECT_LE(t.low, t.high);
  }
  const PerformanceTarget& mediated = performance_targets()[3];
  ASSERT_EQ(mediated.numerator, "mediated");
  EXPECT_FALSE(mediated.applies_at(1)) << "below iodepth 8 the target is not decided";
  EXPECT_TRUE(mediated.applies_at(8));
  const PerformanceTarget& fio = performance_targets().back();
  ASSERT_EQ(fio.denominator, "fio");
  EXPECT_FALSE(fio.met_by(1.06)) << "within ±5% has an upper bound too";
  EXPECT_TRUE(fio.met_by(1.05));
}

}  // namespace
}  // namespace rf::bench
