#include "engine/row_catalogue.h"

#include <algorithm>
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
  ASSERT_EQ(names.size(), 15u) << row_names();
  std::set<std::string> seen;
  for (const std::string& name : names) {
    EXPECT_TRUE(seen.insert(name).second) << name;
    const auto row = row_from_name(name);
    ASSERT_TRUE(row) << name;
    EXPECT_EQ(row->name, name);
    EXPECT_EQ(int(row->host.has_value()) + int(row->guest.has_value()) + int(row->kvm.has_value()) +
                  int(row->linux_guest.has_value()),
              row->is_fio() ? 0 : 1)
        << name << " is exactly one kind of row";
    if (name == "bare") {
      EXPECT_TRUE(row->baseline.empty()) << "bare is the baseline of them all";
    } else if (name == "qsd-virtio") {
      EXPECT_TRUE(row->baseline.empty()) << "the peer is the Linux-guest rows' baseline";
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
  for (const char* name : {"linux-passthrough", "linux-mediated", "linux-virtio"}) {
    EXPECT_EQ(row_from_name(name)->baseline, "qsd-virtio") << name << " against qemu-storage-daemon's virtio path";
    EXPECT_FALSE(row_from_name(name)->is_fio());
  }
}

TEST(PerformanceTargets, TheLinuxPassthroughTargetsSplitAtIodepth8) {
  const PerformanceTarget* at_one = nullptr;
  const PerformanceTarget* from_eight = nullptr;
  for (const PerformanceTarget& t : performance_targets()) {
    if (t.numerator != "linux-passthrough") continue;
    (t.low == 1.5 ? at_one : from_eight) = &t;
  }
  ASSERT_TRUE(at_one && from_eight);
  EXPECT_TRUE(at_one->applies_at(1));
  EXPECT_FALSE(at_one->applies_at(8)) << "1.5x is the iodepth-1 target only";
  EXPECT_FALSE(from_eight->applies_at(1));
  EXPECT_TRUE(from_eight->applies_at(8));
  EXPECT_TRUE(from_eight->applies_at(32));
  EXPECT_EQ(from_eight->low, 2.0);
  EXPECT_EQ(from_eight->denominator, "qsd-virtio");
}

TEST(LinuxGuestRows, SayWhyTheyCannotRunWithoutAnImage) {
  const LinuxGuestSetup setup{"/nonexistent/guest-image", "tcg", ""};
  const auto why = linux_row_unsupported(LinuxGuestRow::Passthrough, setup);
  ASSERT_TRUE(why);
  // Where QEMU is missing it says that first; otherwise it names the image and how to build it.
  EXPECT_TRUE(why->find("guest-image") != std::string::npos || why->find("not installed") != std::string::npos) << *why;
  const auto run = run_linux_guest_job(LinuxGuestRow::Virtio, FioJob{}, setup);
  ASSERT_FALSE(run);
  EXPECT_EQ(run.error(), *linux_row_unsupported(LinuxGuestRow::Virtio, setup));
}

TEST(PerformanceTargets, NameRowsOfTheCatalogueAndDecideAtTheirBounds) {
  ASSERT_FALSE(performance_targets().empty());
  for (const PerformanceTarget& t : performance_targets()) {
    EXPECT_TRUE(row_from_name(t.numerator)) << t.text;
    EXPECT_TRUE(t.denominator == kBestHostRow || row_from_name(t.denominator)) << t.text;
    EXPECT_TRUE(t.met_by(t.low)) << t.text << ": the bound itself is met";
    EXPECT_FALSE(t.met_by(t.low - 0.001)) << t.text;
    EXPECT_LE(t.low, t.high);
  }
  const PerformanceTarget& mediated = performance_targets()[3];
  ASSERT_EQ(mediated.numerator, "mediated");
  EXPECT_EQ(mediated.denominator, kBestHostRow);
  EXPECT_TRUE(mediated.applies_at(1)) << "against the best host row at every depth";
  EXPECT_TRUE(mediated.applies_at(32));
  const PerformanceTarget& fio = performance_targets().back();
  ASSERT_EQ(fio.denominator, "fio");
  EXPECT_FALSE(fio.met_by(1.06)) << "within ±5% has an upper bound too";
  EXPECT_TRUE(fio.met_by(1.05));
  // Decided on the interval: inside the band met, outside missed, across a bound undecided.
  EXPECT_EQ(fio.verdict({1.0, 0.97, 1.03, 5}), Verdict::Met);
  EXPECT_EQ(fio.verdict({1.1, 1.07, 1.13, 5}), Verdict::Missed);
  EXPECT_EQ(fio.verdict({1.04, 1.01, 1.07, 5}), Verdict::Undecided);
  EXPECT_EQ(fio.verdict({1.0, 1.0, 1.0, 1}), Verdict::Undecided) << "one run has no interval";
}

TEST(PerformanceTargets, TheBestHostRowIsChosenAmongTheHostRingsAndFio) {
  const auto names = best_host_candidates();
  for (const char* row : {"bare", "bare-sqpoll", "bare-sqpoll-iopoll", "restricted", "fio"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), row), names.end()) << row;
  }
  for (const char* guest : {"passthrough", "mediated", "passthrough-sqpoll", "linux-virtio"}) {
    EXPECT_EQ(std::find(names.begin(), names.end(), guest), names.end()) << guest << " is not a host row";
  }
}

}  // namespace
}  // namespace rf::bench
