// The process guest end to end: ringfence-guest (RF_GUEST_PATH) on a passthrough device.
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstring>
#include <fstream>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "disk/loop_device.h"
#include "sandbox/process_sandbox.h"
#include "restrictions/guest_seccomp.h"
#include "support/kernel_caps.h"
#include "support/test_disk.h"
#include "util/address.h"

namespace rf {
namespace {

constexpr std::uint64_t kDisk = 16ull << 20;
constexpr std::chrono::seconds kTimeout{60};

std::set<std::string> fds_of(const std::string& pid) {
  std::set<std::string> out;
  if (DIR* d = ::opendir(("/proc/" + pid + "/fd").c_str())) {
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] != '.') out.insert(e->d_name);
    }
    ::closedir(d);
  }
  return out;
}

// A field of /proc/<pid>/status ("Seccomp", "VmPin"), as text.
std::string status_field(const std::string& pid, const std::string& field) {
  std::ifstream in("/proc/" + pid + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) {
      const auto value = line.substr(field.size() + 1);
      return value.substr(value.find_first_not_of(" \t"));
    }
  }
  return "";
}

SandboxConfig small_sandbox() {
  SandboxConfig config;
  config.ram_bytes = 64ull << 20;
  config.guest_binary = RF_GUEST_PATH;
  return config;
}

class GuestProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RF_REQUIRE(test::sqpoll_feature());
    RF_REQUIRE(test::no_mmap_feature());
    RF_REQUIRE(test::loop_device_feature());
  }

  void start(SandboxConfig config = small_sandbox()) {
    image_ = test::make_image(dir_, "disk.img", kDisk);
    ASSERT_FALSE(image_.empty());
    auto disk = Disk::open(image_, {});
    ASSERT_TRUE(disk) << disk.error().message;
    std::vector<Disk> disks;
    disks.push_back(std::move(*disk));
    auto sandbox = ProcessSandbox::create(std::move(disks), config);
    ASSERT_TRUE(sandbox) << sandbox.error().message;
    sandbox_ = std::make_unique<ProcessSandbox>(std::move(*sandbox));
  }

  GuestExitStatus run(std::vector<std::string> args) {
    auto guest = sandbox_->spawn(std::move(args));
    EXPECT_TRUE(guest) << guest.error().message;
    if (!guest) return {};
    auto exit = guest->wait(kTimeout);
    EXPECT_TRUE(exit) << exit.error().message;
    return exit ? *exit : GuestExitStatus{};
  }

  // Runs a probe guest (one raw SQE) and returns the result it completed with.
  std::int32_t probe(std::vector<std::string> args) {
    args.insert(args.begin(), {"--scenario", "probe"});
    const GuestExitStatus exit = run(std::move(args));
    EXPECT_TRUE(exit.exited && exit.code == 0) << exit.describe();
    auto report = sandbox_->report();
    EXPECT_TRUE(report && report->probe_done == 1) << "the probe guest left no result";
    return report ? report->probe_result : 0;
  }
  // A READ_FIXED aimed at a VMM page outside guest RAM: its result, and the page must not change.
  std::int32_t canary_probe() {
    auto canary = MmapRegion::map_anonymous(page_size());
    EXPECT_TRUE(canary);
    if (!canary) return 0;
    std::memset(canary->data(), 0xc5, canary->size());
    const std::int32_t res = probe({"--probe-addr", std::to_string(address_of(canary->data()))});
    EXPECT_TRUE(std::all_of(canary->bytes(), canary->bytes() + canary->size(),
                            [](std::byte b) { return b == std::byte{0xc5}; }));
    return res;
  }
  // A WRITE_FIXED at the disk's end: its result, and the image must keep its size.
  std::int32_t write_past_end_probe() {
    const std::int32_t res = probe({"--probe-op", "write", "--probe-offset", std::to_string(kDisk)});
    EXPECT_EQ(test::file_size(image_), kDisk);
    return res;
  }

  TempDir dir_{"ringfence-test"};
  std::string image_;
  std::unique_ptr<ProcessSandbox> sandbox_;
};

TEST_F(GuestProcessTest, TheVerifiedWorkloadPassesEndToEnd) {
  ASSERT_NO_FATAL_FAILURE(start());
  VerifiedRunConfig config;
  config.seed = 42;
  config.passes = 2;
  auto run = run_verified_guest(*sandbox_, config);
  ASSERT_TRUE(run) << run.error().message;
  EXPECT_TRUE(run->exit.exited && run->exit.code == 0) << run->exit.describe();
  ASSERT_TRUE(run->guest);
  const std::uint64_t blocks = kDisk / 4096;
  EXPECT_EQ(run->guest->workload.writes, 2 * blocks);
  EXPECT_EQ(run->guest->workload.reads, 2 * blocks);
  EXPECT_EQ(run->guest->workload.flushes, 2u);
  EXPECT_EQ(run->guest->workload.mismatches, 0u);
  EXPECT_EQ(run->blocks_checked, blocks);
  EXPECT_EQ(run->blocks_mismatched, 0u);
  EXPECT_TRUE(run->passed());
}

TEST_F(GuestProcessTest, TheDataPathMakesNoSystemCallButTheDoorbellAndTheNotification) {
  // The whole verified workload runs under a filter that kills the guest on any other call.
  std::vector<std::string> allowed;
  for (const auto& allow : policy::guest_seccomp_allow_list(guest::kKickFd, guest::kNotifyFd)) {
    allowed.push_back(std::string(allow.syscall) +
                      (allow.first_argument ? "(" + std::to_string(*allow.first_argument) + ")" : ""));
  }
#if defined(__SANITIZE_ADDRESS__)
  ASSERT_EQ(allowed.back(), "sigaltstack(0)");  // the sanitizer runtime's query, sanitizer builds only
  allowed.pop_back();
#endif
  EXPECT_EQ(allowed, (std::vector<std::string>{"write(4)", "read(5)", "exit_group"}));
  // A short SQPOLL idle time lets the thread fall asleep whenever the guest pauses, so the
  // doorbell is part of the data path.
  SandboxConfig config = small_sandbox();
  config.passthrough.sqpoll_idle = std::chrono::milliseconds(1);
  ASSERT_NO_FATAL_FAILURE(start(config));
  VerifiedRunConfig run_config;
  run_config.passes = 1;
  run_config.depth = 4;
  auto verified = run_verified_guest(*sandbox_, run_config);
  ASSERT_TRUE(verified) << verified.error().message;
  EXPECT_TRUE(verified->passed()) << verified->exit.describe();
  // After 50 ms of quiet the SQ thread sleeps for sure: the next guest must ring the doorbell,
  // through its filter, and the VMM must turn that into a wake-up.
  const std::uint64_t wakeups_before = sandbox_->passthrough()->doorbells();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(probe({}), 4096);
  auto report = sandbox_->report();
  ASSERT_TRUE(report);
  EXPECT_EQ(report->counters.kicks, 1u);
  for (int i = 0; i < 100 && sandbox_->passthrough()->doorbells() == wakeups_before; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_GT(sandbox_->passthrough()->doorbells(), wakeups_before);
}

TEST_F(GuestProcessTest, IoGoesToTheWindowOfEachRegion) {
  // Two regions with a gap: the device window in the first, the workload's buffers in the
  // second, which is a different fixed buffer with its own host-address bias.
  SandboxConfig config = small_sandbox();
  config.regions = {{GuestAddress{0}, 16ull << 20, false}, {GuestAddress{1ull << 32}, 32ull << 20, false}};
  ASSERT_NO_FATAL_FAILURE(start(config));
  ASSERT_EQ(sandbox_->device().windows().size(), 2u);
  EXPECT_EQ(sandbox_->device().windows()[1].gpa, 1ull << 32);
  EXPECT_EQ(sandbox_->scratch(), GuestAddress{1ull << 32});
  VerifiedRunConfig run_config;
  run_config.passes = 1;
  auto run = run_verified_guest(*sandbox_, run_config);
  ASSERT_TRUE(run) << run.error().message;
  EXPECT_TRUE(run->passed()) << run->exit.describe();
}

TEST_F(GuestProcessTest, APollingGuestPassesToo) {
  ASSERT_NO_FATAL_FAILURE(start());
  VerifiedRunConfig config;
  config.passes = 1;
  config.poll = true;
  auto run = run_verified_guest(*sandbox_, config);
  ASSERT_TRUE(run) << run.error().message;
  EXPECT_TRUE(run->passed()) << run->exit.describe();
  ASSERT_TRUE(run->guest);
  EXPECT_EQ(run->guest->counters.waits, 0u) << "a polling guest never blocks";
}

TEST_F(GuestProcessTest, TheVmmsOwnCheckCatchesADiskThatDoesNotHoldTheData) {
  ASSERT_NO_FATAL_FAILURE(start());
  VerifiedRunConfig config;
  config.seed = 9;
  config.passes = 1;
  auto run = run_verified_guest(*sandbox_, config);
  ASSERT_TRUE(run && run->passed());
  const Disk& disk = sandbox_->device().disks().front();
  auto same = verify_disk_pattern(disk, 9, 0, 4096);
  ASSERT_TRUE(same) << same.error().message;
  EXPECT_EQ(same->mismatched, 0u);
  auto other_seed = verify_disk_pattern(disk, 10, 0, 4096);
  ASSERT_TRUE(other_seed);
  EXPECT_EQ(other_seed->mismatched, other_seed->checked);
  // One corrupted byte in one block, written behind the guest's back.
  {
    UniqueFd image(::open(image_.c_str(), O_WRONLY | O_CLOEXEC));
    ASSERT_TRUE(image);
    ASSERT_EQ(::pwrite(image.get(), "x", 1, 5 * 4096 + 17), 1);
    ASSERT_EQ(::fsync(image.get()), 0);
  }
  auto corrupted = verify_disk_pattern(disk, 9, 0, 4096);
  ASSERT_TRUE(corrupted);
  EXPECT_EQ(corrupted->mismatched, 1u);
}

TEST_F(GuestProcessTest, AReadIntoACanaryPageOutsideGuestRamFailsWithEfault) {
  ASSERT_NO_FATAL_FAILURE(start());
  EXPECT_EQ(canary_probe(), -EFAULT);
}

TEST_F(GuestProcessTest, AWritePastTheEndOfTheDiskFailsAndTheImageKeepsItsSize) {
  ASSERT_NO_FATAL_FAILURE(start());
  EXPECT_EQ(write_past_end_probe(), -ENOSPC);
}

TEST_F(GuestProcessTest, AMissingGuestBinaryIsAClearError) {
  SandboxConfig config = small_sandbox();
  config.guest_binary = dir_.path() + "/no-such-guest";
  ASSERT_NO_FATAL_FAILURE(start(config));
  auto guest = sandbox_->spawn({"--scenario", "verify"});
  ASSERT_FALSE(guest);
  EXPECT_EQ(guest.error().code, GuestProcessErrc::Spawn);
  EXPECT_NE(guest.error().message.find("no-such-guest"), std::string::npos) << guest.error().message;
  EXPECT_NE(guest.error().message.find("RINGFENCE_GUEST"), std::string::npos) << guest.error().message;
}

class ForbiddenSyscallTest : public GuestProcessTest, public ::testing::WithParamInterface<const char*> {};

TEST_P(ForbiddenSyscallTest, KillsTheGuestWithSigsys) {
  ASSERT_NO_FATAL_FAILURE(start());
  const GuestExitStatus exit = run({"--scenario", "forbidden-syscall", "--syscall", GetParam()});
  EXPECT_FALSE(exit.exited) << exit.describe();
  EXPECT_EQ(exit.signal, SIGSYS) << exit.describe();
}

INSTANTIATE_TEST_SUITE_P(Syscalls, ForbiddenSyscallTest, ::testing::Values("openat", "io_uring_enter", "io_uring_register"));

TEST_F(GuestProcessTest, ARunningGuestHoldsOnlyItsEventfdsUnderSeccomp) {
  ASSERT_NO_FATAL_FAILURE(start());
  auto guest = sandbox_->spawn({"--scenario", "flood", "--depth", "8"});
  ASSERT_TRUE(guest) << guest.error().message;
  const std::string pid = std::to_string(guest->pid());
  std::string seccomp;
  for (int i = 0; i < 500 && seccomp != "2"; ++i) {
    seccomp = status_field(pid, "Seccomp");
    if (seccomp != "2") std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(seccomp, "2") << "the guest never entered seccomp filter mode";
  EXPECT_EQ(status_field(pid, "NoNewPrivs"), "1");
  EXPECT_EQ(fds_of(pid), (std::set<std::string>{"4", "5"}));
  guest->kill();
  auto exit = guest->wait(kTimeout);
  ASSERT_TRUE(exit);
  EXPECT_EQ(exit->signal, SIGKILL);
}

TEST_F(GuestProcessTest, AGuestKilledWithIoInFlightLeavesNothingBehind) {
  const auto self_fds = [] { return fds_of("self").size(); };
  const auto pinned = [] { return status_field("self", "VmPin"); };
  // Rings of earlier tests in this process may still be unpinning (the kernel frees them
  // asynchronously): start from a quiet baseline.
  for (int i = 0; i < 500 && pinned() != "0 kB"; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  const std::size_t fds_before = self_fds();
  const std::string pinned_before = pinned();
  std::string loop;
  {
    ASSERT_NO_FATAL_FAILURE(start());
    auto guest = sandbox_->spawn({"--scenario", "flood", "--depth", "32"});
    ASSERT_TRUE(guest) << guest.error().message;
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the guest keeps 32 reads in flight
    EXPECT_NE(pinned(), pinned_before) << "guest RAM should be pinned while the ring lives";
    guest->kill();
    auto exit = guest->wait(kTimeout);
    ASSERT_TRUE(exit);
    EXPECT_EQ(exit->signal, SIGKILL);
    loop = sandbox_->device().disks().front().loop_device();
    sandbox_.reset();  // the VMM tears the device down with whatever was in flight
  }
  EXPECT_TRUE(wait_for_loop_detach(loop, std::chrono::seconds(5))) << loop;
  // The kernel frees the ring (and unpins guest RAM) asynchronously after the last close.
  for (int i = 0; i < 500 && (pinned() != pinned_before || self_fds() != fds_before); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(pinned(), pinned_before);
  EXPECT_EQ(self_fds(), fds_before);
}

// The same guest process, unchanged, in mediated mode: only the descriptor's mode differs.
class MediatedGuestProcessTest : public GuestProcessTest {
 protected:
  void SetUp() override {
    RF_REQUIRE(test::restrictions_feature());
    RF_REQUIRE(test::loop_device_feature());
  }
  static SandboxConfig mediated_sandbox() {
    SandboxConfig config = small_sandbox();
    config.mode = abi::Mode::Mediated;
    return config;
  }
};

TEST_F(MediatedGuestProcessTest, TheVerifiedWorkloadPassesEndToEnd) {
  ASSERT_NO_FATAL_FAILURE(start(mediated_sandbox()));
  ASSERT_NE(sandbox_->mediated(), nullptr);
  VerifiedRunConfig config;
  config.seed = 43;
  config.passes = 2;
  auto run = run_verified_guest(*sandbox_, config);
  ASSERT_TRUE(run) << run.error().message;
  EXPECT_TRUE(run->passed()) << run->exit.describe();
  const MediatorCounters c = sandbox_->mediated()->counters();
  const std::uint64_t ios = 2 * 2 * (kDisk / 4096) + 2;
  EXPECT_EQ(c.consumed, ios);
  EXPECT_EQ(c.submitted, ios);
  EXPECT_EQ(c.completed, ios);
  EXPECT_EQ(c.refused_total(), 0u);
  EXPECT_EQ(c.broken, BrokenReason::None);
}

TEST_F(MediatedGuestProcessTest, AHostileAddressIsRefusedByTheMediator) {
  ASSERT_NO_FATAL_FAILURE(start(mediated_sandbox()));
  // The host address of VMM memory, which the mediator reads as a guest-physical address.
  EXPECT_EQ(canary_probe(), -EFAULT);
  EXPECT_EQ(sandbox_->mediated()->counters().refused[static_cast<std::size_t>(RefusalRule::Memory)], 1u);
  EXPECT_EQ(sandbox_->mediated()->counters().submitted, 0u);
}

TEST_F(MediatedGuestProcessTest, AWritePastTheEndIsRefusedByTheRangeRule) {
  ASSERT_NO_FATAL_FAILURE(start(mediated_sandbox()));
  EXPECT_EQ(write_past_end_probe(), -ENXIO);
  EXPECT_EQ(sandbox_->mediated()->counters().refused[static_cast<std::size_t>(RefusalRule::Range)], 1u);
}

}  // namespace
}  // namespace rf
