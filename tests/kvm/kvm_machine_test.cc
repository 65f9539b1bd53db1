// The KVM example VMM end to end: a bare-metal guest running the reference driver in a real
// virtual machine, in both data paths. Skips where /dev/kvm is not usable.
#include "kvm/kvm_machine.h"

#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "sandbox/process_sandbox.h"
#include "support/kernel_caps.h"
#include "support/test_disk.h"
#include "util/address.h"
#include "device/hostile_probes.h"
#include "util/canary_page.h"
#include "util/temp_dir.h"

namespace rf::kvm {
namespace {

using namespace std::chrono_literals;

constexpr std::uint64_t kDiskBytes = 256ull << 10;  // small: see docs/kvm.md on emulated hosts
constexpr std::uint64_t kRamBytes = 64ull << 20;
constexpr auto kTimeout = 120'000ms;

std::string log_text(const GuestOutcome& out) {
  std::string text;
  for (const std::string& line : out.log) text += "  " + line + "\n";
  return text;
}

class KvmMachineTest : public ::testing::TestWithParam<rf_mode> {
 protected:
  void SetUp() override {
    RF_REQUIRE(test::kvm_feature());
    ASSERT_FALSE(dir_.path().empty());
    image_ = test::make_image(dir_, "disk.img", kDiskBytes);
    ASSERT_FALSE(image_.empty());
    MachineConfig config;
    config.mode = GetParam();
    config.disk_path = image_;
    config.ram_bytes = kRamBytes;
    config.guest_image = RF_KVM_GUEST_IMAGE;
    auto machine = KvmMachine::create(config);
    ASSERT_TRUE(machine) << machine.error().message;
    machine_.emplace(std::move(*machine));
  }

  GuestOutcome verify(std::uint64_t seed, std::uint32_t passes) {
    BootInfo info = machine_->boot_info(Scenario::Verify);
    info.seed = seed;
    info.passes = passes;
    info.depth = 16;
    return machine_->boot(info, kTimeout);
  }

  // Every block of the image holds the last pass's data: checked by reading the image itself.
  void expect_disk_holds(std::uint64_t seed, std::uint32_t passes) {
    const int fd = ::open(image_.c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    auto check = verify_disk_pattern(fd, kDiskBytes, image_, seed, passes - 1, 4096);
    ::close(fd);
    ASSERT_TRUE(check) << check.error().message;
    EXPECT_EQ(check->checked, kDiskBytes / 4096);
    EXPECT_EQ(check->mismatched, 0u);
  }

  std::optional<std::int32_t> probe(std::uint32_t opcode, std::uint64_t addr, std::uint64_t offset) {
    const GuestOutcome out = machine_->boot(machine_->probe_info(opcode, addr, offset), kTimeout);
    EXPECT_TRUE(out.ok()) << out.describe();
    return out.probe_result();
  }

  TempDir dir_{"ringfence-kvm-test"};
  std::string image_;
  std::optional<KvmMachine> machine_;
};

TEST_P(KvmMachineTest, GuestRunsTheVerifiedWorkloadAndTheDiskHoldsItsData) {
  const GuestOutcome out = verify(0x1234, 2);
  ASSERT_TRUE(out.ok()) << out.describe() << "\nguest log:\n" << log_text(out);
  ASSERT_TRUE(out.report);
  EXPECT_EQ(out.report->attach_status, guest::AttachStatus::Ok);
  const guest::WorkloadReport& w = out.report->workload;
  EXPECT_EQ(w.status, guest::WorkloadStatus::Ok);
  EXPECT_EQ(w.passes, 2u);
  EXPECT_EQ(w.writes, 2 * kDiskBytes / 4096);
  EXPECT_EQ(w.reads, 2 * kDiskBytes / 4096);
  EXPECT_EQ(w.errors, 0u);
  EXPECT_EQ(w.mismatches, 0u);
  ASSERT_FALSE(out.log.empty());
  EXPECT_EQ(out.log.front(), "ringfence kvm guest: up in 64-bit mode");
  EXPECT_TRUE(std::any_of(out.log.begin(), out.log.end(), [](const std::string& l) { return l.rfind("verify: ok", 0) == 0; }));
  expect_disk_holds(0x1234, 2);

  // The doorbell reached the device through KVM_IOEVENTFD: the device counted the work.
  rf_device_counters counters{};
  counters.struct_size = sizeof(counters);
  ASSERT_EQ(rf_device_counters_of(machine_->device(), &counters), RF_OK);
  if (GetParam() == RF_MODE_MEDIATED) {
    EXPECT_EQ(counters.consumed, w.reads + w.writes + w.flushes);
    EXPECT_EQ(counters.refused, 0u);
  }
  auto stopped = machine_->stop(1000ms);
  ASSERT_TRUE(stopped) << stopped.error().message;
  EXPECT_EQ(stopped->released, 1u);
}

// The catalogue of hostile probes (device/hostile_probes.h), each from a fresh boot of the KVM guest.
TEST_P(KvmMachineTest, HostileSqesGetErrorCompletionsAndTheVmmCarriesOn) {
  auto canary = CanaryPage::create();
  ASSERT_TRUE(canary) << canary.error().message;
  const abi::Mode mode = GetParam() == RF_MODE_PASSTHROUGH ? abi::Mode::Passthrough : abi::Mode::Mediated;
  ProbeTargets targets;
  targets.canary = canary->address();
  // A guest-physical address just past the end of RAM (biased as the driver would in passthrough).
  targets.past_ram = kRamBytes + (mode == abi::Mode::Passthrough ? address_of(machine_->ram_host()) : 0);
  targets.disk_bytes = kDiskBytes;
  for (const HostileProbe& p : hostile_probes()) {
    const abi::GuestSqe sqe = probe_sqe(p, targets);
    // Address 0: the guest's own scratch memory.
    EXPECT_EQ(probe(sqe.opcode, p.address == ProbeAddress::GuestBuffer ? 0 : sqe.addr, sqe.off), p.expected(mode))
        << p.name << ": " << p.why;
    EXPECT_TRUE(canary->intact()) << p.name;
    EXPECT_EQ(test::file_size(image_), kDiskBytes) << p.name;
  }

  // The device still serves the next guest.
  const GuestOutcome out = verify(77, 1);
  ASSERT_TRUE(out.ok()) << out.describe();
  expect_disk_holds(77, 1);
}

TEST_P(KvmMachineTest, AGuestThatFaultsOrHangsIsStoppedAndTheNextBootWorks) {
  GuestOutcome fault = machine_->boot(machine_->boot_info(Scenario::ReadOutsideRam), kTimeout);
  EXPECT_EQ(fault.kind, GuestOutcome::Kind::Fault) << fault.describe();
  EXPECT_TRUE(std::none_of(fault.log.begin(), fault.log.end(),
                           [](const std::string& l) { return l == "the read past RAM returned"; }));

  const auto start = std::chrono::steady_clock::now();
  GuestOutcome spin = machine_->boot(machine_->boot_info(Scenario::Spin), 300ms);
  EXPECT_EQ(spin.kind, GuestOutcome::Kind::TimedOut) << spin.describe();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);

  BootInfo bad = machine_->boot_info(Scenario::Verify);
  bad.magic = 0;
  GuestOutcome refused = machine_->boot(bad, kTimeout);
  EXPECT_EQ(refused.kind, GuestOutcome::Kind::Exited);
  EXPECT_EQ(refused.exit_code, static_cast<int>(guest::GuestExit::Usage));

  const GuestOutcome out = verify(5, 1);
  EXPECT_TRUE(out.ok()) << out.describe();
}

INSTANTIATE_TEST_SUITE_P(Modes, KvmMachineTest, ::testing::Values(RF_MODE_PASSTHROUGH, RF_MODE_MEDIATED),
                         [](const auto& param_info) { return param_info.param == RF_MODE_PASSTHROUGH ? "Passthrough" : "Mediated"; });

TEST(KvmMachineConfig, RefusesAMissingGuestImageAndNamesTheFix) {
  TempDir dir("ringfence-kvm-test");
  MachineConfig config;
  config.disk_path = test::make_image(dir, "disk.img", kDiskBytes);
  config.guest_image = dir.path() + "/no-such-guest.bin";
  auto machine = KvmMachine::create(config);
  ASSERT_FALSE(machine);
  EXPECT_EQ(machine.error().code, MachineErrc::Image);
  EXPECT_NE(machine.error().message.find("no-such-guest.bin"), std::string::npos);
  EXPECT_NE(machine.error().message.find("RINGFENCE_KVM_GUEST"), std::string::npos);
}

TEST(KvmMachineConfig, RefusesRamThatIsNotWholeLargePagesOrLeavesNoScratch) {
  RF_REQUIRE(test::kvm_feature());
  TempDir dir("ringfence-kvm-test");
  MachineConfig config;
  config.disk_path = test::make_image(dir, "disk.img", kDiskBytes);
  config.guest_image = RF_KVM_GUEST_IMAGE;
  config.ram_bytes = (64ull << 20) + 4096;
  auto odd = KvmMachine::create(config);
  ASSERT_FALSE(odd);
  EXPECT_EQ(odd.error().code, MachineErrc::Memory);
  config.ram_bytes = 4ull << 20;  // the device window takes what the scratch memory would need
  auto tiny = KvmMachine::create(config);
  ASSERT_FALSE(tiny);
  EXPECT_EQ(tiny.error().code, MachineErrc::Memory) << tiny.error().message;
}

TEST(KvmMachineConfig, RefusesAMissingDisk) {
  RF_REQUIRE(test::kvm_feature());
  MachineConfig config;
  config.disk_path = "/nonexistent/disk.img";
  config.guest_image = RF_KVM_GUEST_IMAGE;
  auto machine = KvmMachine::create(config);
  ASSERT_FALSE(machine);
  EXPECT_EQ(machine.error().code, MachineErrc::Disk);
  EXPECT_NE(machine.error().message.find("/nonexistent/disk.img"), std::string::npos) << machine.error().message;
}

}  // namespace
}  // namespace rf::kvm
