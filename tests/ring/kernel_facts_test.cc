#include "ring/kernel_facts.h"

#include <sys/utsname.h>

#include <fstream>

#include <gtest/gtest.h>

namespace rf {
namespace {

TEST(KernelFactsTest, ReleaseIsUname) {
  utsname u{};
  ASSERT_EQ(::uname(&u), 0);
  EXPECT_EQ(kernel_release(), u.release);
}

TEST(KernelFactsTest, IoUringDisabledSysctlMatchesProc) {
  std::ifstream in("/proc/sys/kernel/io_uring_disabled");
  int value = -1;
  if (in >> value) {
    EXPECT_EQ(io_uring_disabled_sysctl(), value);
  } else {
    EXPECT_FALSE(io_uring_disabled_sysctl());  // before Linux 6.6
  }
}

TEST(KernelFactsTest, EpermExplanationNamesTheSysctlOrTheFilter) {
  const std::string why = explain_io_uring_eperm();
  EXPECT_TRUE(why.find("kernel.io_uring_disabled") != std::string::npos || why.find("seccomp") != std::string::npos)
      << why;
  EXPECT_NE(why.find("Fix"), std::string::npos) << why;
}

}  // namespace
}  // namespace rf
