// Kernel features the tests need, probed once per process (folly IoUringBackend::isAvailable
// style). A test skips only when the kernel or machine lacks a feature (io_uring absent or
// disabled, EINVAL for a setup flag or for restrictions); any other failure is a test failure.
#pragma once

#include <string>

#include <gtest/gtest.h>

namespace rf::test {

struct Feature {
  bool available = false;
  bool missing_in_kernel = false;  // true: skip; false with !available: a real failure
  std::string reason;
};

const Feature& io_uring_feature();
const Feature& restrictions_feature();
const Feature& sqpoll_feature();
const Feature& no_mmap_feature();
const Feature& no_sqarray_feature();
// Loop devices (/dev/loop-control), which bound a regular image file's offsets.
const Feature& loop_device_feature();
// zram devices made through /sys/class/zram-control (loading the module if needed), as root.
const Feature& zram_feature();
// A usable /dev/kvm (it opens read-write and speaks API version 12), for the KVM example VMM.
const Feature& kvm_feature();

}  // namespace rf::test

// In a test or SetUp(): skip when the kernel lacks `feature`, fail when probing it broke.
#define RF_REQUIRE(feature)                                                        \
  do {                                                                             \
    const ::rf::test::Feature& rf_feature_ = (feature);                            \
    if (!rf_feature_.available) {                                                  \
      if (rf_feature_.missing_in_kernel) GTEST_SKIP() << rf_feature_.reason;       \
      FAIL() << "probing " #feature " failed: " << rf_feature_.reason;             \
    }                                                                              \
  } while (0)
