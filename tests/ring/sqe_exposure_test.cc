#include "ring/sqe_exposure.h"

#include <sys/utsname.h>

#include <cstdio>

#include <gtest/gtest.h>

#include "support/kernel_caps.h"

namespace rf {
namespace {

const SqeFieldFinding* find(const SqeExposure& e, const std::string& prefix) {
  for (const auto& f : e.fields) {
    if (f.field.rfind(prefix, 0) == 0) return &f;
  }
  return nullptr;
}

// (major, minor) of the running kernel.
std::pair<int, int> kernel_version() {
  utsname u{};
  ::uname(&u);
  int major = 0, minor = 0;
  std::sscanf(u.release, "%d.%d", &major, &minor);
  return {major, minor};
}

TEST(SqeExposure, TheKernelActsOnFieldsNoRestrictionFilters) {
  RF_REQUIRE(test::restrictions_feature());
  const SqeExposure e = probe_sqe_exposure();
  ASSERT_TRUE(e.ran) << e.error;
  const SqeFieldFinding* ioprio = find(e, "ioprio");
  ASSERT_NE(ioprio, nullptr);
  EXPECT_TRUE(ioprio->interpreted);
  // Probed from a thread without capabilities, as a device's ring: real-time is refused.
  EXPECT_NE(ioprio->seen.find("real-time class: EPERM"), std::string::npos) << ioprio->seen;
  const SqeFieldFinding* rw = find(e, "rw_flags");
  ASSERT_NE(rw, nullptr);
  EXPECT_TRUE(rw->interpreted);
  EXPECT_NE(rw->seen.find("DSYNC"), std::string::npos) << rw->seen;
  const SqeFieldFinding* attr = find(e, "attr_ptr");
  ASSERT_NE(attr, nullptr);
  // The read/write attribute pointer arrived in Linux 6.15: from then on the kernel reads it.
  if (kernel_version() >= std::pair{6, 15}) {
    EXPECT_TRUE(attr->interpreted) << attr->seen;
    EXPECT_NE(attr->seen.find("EFAULT"), std::string::npos) << attr->seen;
  }
  const SqeFieldFinding* personality = find(e, "personality");
  ASSERT_NE(personality, nullptr);
  EXPECT_NE(personality->seen.find("EINVAL"), std::string::npos) << personality->seen;
  for (const auto& f : e.fields) {
    EXPECT_FALSE(f.opcodes.empty()) << f.field;
    EXPECT_FALSE(f.lets_a_guest.empty()) << f.field;
  }
}

}  // namespace
}  // namespace rf
