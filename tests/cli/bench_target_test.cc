#include "cli/bench_target.h"

#include <sys/stat.h>

#include <gtest/gtest.h>

namespace rf::cli {
namespace {

bool contains(const std::string& s, const std::string& needle) { return s.find(needle) != std::string::npos; }

TEST(BenchTargetKind, RamDisksAreCpuBoundAndDisksLatencyBound) {
  EXPECT_TRUE(contains(target_kind("zram3", false), "CPU-bound (zram3: RAM behind it")) << target_kind("zram3", false);
  EXPECT_TRUE(contains(target_kind("zram3", false), "io-wq worker"));
  EXPECT_TRUE(contains(target_kind("ram0", false), "CPU-bound"));
  EXPECT_FALSE(contains(target_kind("ram0", false), "io-wq")) << "only zram lacks non-blocking I/O";
  EXPECT_TRUE(contains(target_kind("vda", true), "latency-bound (a file on vda: a disk)")) << target_kind("vda", true);
  EXPECT_TRUE(contains(target_kind("nvme0n1", false), "latency-bound (nvme0n1: a disk)"));
  EXPECT_TRUE(contains(target_kind("loop7", false), "loop7 over ")) << target_kind("loop7", false);
  EXPECT_TRUE(contains(target_kind("", true), "a file whose block device is not known")) << target_kind("", true);
}

TEST(BenchTargetKind, AFileIsNamedByTheDiskItLivesOn) {
  struct stat st{};
  ASSERT_EQ(::stat("/proc/self/exe", &st), 0);
  // The test binary lives on some disk (or on a file system with no block device, such as an
  // overlay: then the name is empty). A partition gives its disk's name.
  const std::string name = block_device_name(st.st_dev);
  if (!name.empty()) {
    struct stat dev{};
    EXPECT_EQ(::stat(("/sys/block/" + name).c_str(), &dev), 0) << name << " is a disk in /sys/block";
  }
}

TEST(BenchTarget, OpeningSomethingMissingSaysWhatToGive) {
  auto t = open_target("/nonexistent/disk", false);
  ASSERT_FALSE(t);
  EXPECT_TRUE(contains(t.error(), "give an existing file or block device, zram")) << t.error();
}

}  // namespace
}  // namespace rf::cli
