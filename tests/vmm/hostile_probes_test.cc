// The hostile probes' catalogue (device/hostile_probes.h), run by the reference driver in this
// process against a device of each mode: every probe gets the completion the catalogue expects
// for the mode, and what it aimed at is unchanged. `ringfence demo` and `ringfence vmm` run the
// same catalogue from a process guest and a KVM guest.
#include <set>

#include <gtest/gtest.h>

#include "device/hostile_probes.h"
#include "device_fixture.h"
#include "util/canary_page.h"

namespace rf {
namespace {

class HostileProbesTest : public test::DeviceFixture, public ::testing::WithParamInterface<abi::Mode> {};

TEST_P(HostileProbesTest, EveryProbeGetsTheCompletionTheCatalogueExpects) {
  ASSERT_NO_FATAL_FAILURE(require(GetParam()));
  test::DeviceSetup setup;
  setup.mode = GetParam();
  ASSERT_NO_FATAL_FAILURE(start(setup));
  auto canary = CanaryPage::create();
  ASSERT_TRUE(canary);
  const GuestRegion& last = memory_->regions().back();
  ProbeTargets targets;
  targets.canary = canary->address();
  targets.past_ram = GetParam() == abi::Mode::Passthrough ? address_of(last.host + last.bytes) : last.base.value() + last.bytes;
  targets.guest_buffer = sqe_addr(test::kScratch);
  targets.disk_bytes = device_->disks().front().size_bytes();
  const std::uint64_t image_bytes = test::file_size(image_);
  ASSERT_GE(hostile_probes().size(), 4u);
  for (const HostileProbe& probe : hostile_probes()) {
    const guest::Completion c = one_raw(probe_sqe(probe, targets));
    EXPECT_EQ(c.result, probe.expected(GetParam())) << probe.name << ": " << probe.why;
    EXPECT_TRUE(canary->intact()) << probe.name;
    EXPECT_EQ(test::file_size(image_), image_bytes) << probe.name;
  }
  EXPECT_EQ(device_->broken().reason, BrokenReason::None);
  EXPECT_EQ(one({guest::Op::Read, 0, 0, test::kScratch, 4096, 1}).result, 4096) << "the device serves the guest after them";
}

TEST(HostileProbesCatalogue, NamesAreUniqueAndEveryProbeIsRefusedInBothModes) {
  std::set<std::string_view> names;
  for (const HostileProbe& probe : hostile_probes()) {
    EXPECT_TRUE(names.insert(probe.name).second) << probe.name;
    EXPECT_LT(probe.passthrough, 0) << probe.name;
    EXPECT_LT(probe.mediated, 0) << probe.name;
    EXPECT_FALSE(probe.what.empty());
    EXPECT_FALSE(probe.why.empty());
  }
}

INSTANTIATE_TEST_SUITE_P(BothModes, HostileProbesTest, ::testing::Values(abi::Mode::Passthrough, abi::Mode::Mediated), test::mode_param_name);

}  // namespace
}  // namespace rf
