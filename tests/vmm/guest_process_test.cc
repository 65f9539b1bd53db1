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
#include "passthrough/process_sandbox.h"
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
  config.device.sqpoll_idle = std::chrono::milliseconds(1);
  ASSERT_NO_FATAL_FAILURE(start(config));
  VerifiedRunConfig run_config;
  run_config.passes = 1;
  run_config.depth = 4;
  auto verified = run_verified_guest(*sandbox_, run_config);
  ASSERT_TRUE(verified) << verified.error().message;
  EXPECT_TRUE(verified->passed()) << verified->exit.describe();
  // After 50 ms of quiet the SQ thread sleeps for sure: the next guest must ring the doorbell,
  // through its filter, and the VMM must turn that into a wake-up.
  const std::uint64_t wakeups_before = sandbox_->device().wakeups();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const GuestExitStatus exit = run({"--scenario", "probe"});
  EXPECT_TRUE(exit.exited && exit.code == 0) << exit.describe();
  auto report = sandbox_->report();
  ASSERT_TRUE(report);
  EXPECT_EQ(report->probe_result, 4096);
  EXPECT_EQ(report->counters.kicks, 1u);
  for (int i = 0; i < 100 && sandbox_->device().wakeups() == wakeups_before; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_GT(sandbox_->device().wakeups(), wakeups_before);
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
  auto canary = MmapRegion::map_anonymous(page_size());
  ASSERT_TRUE(canary);
  std::memset(canary->data(), 0xc5, canary->size());
  const GuestExitStatus exit = run({"--scenario", "probe", "--probe-addr", std::to_string(address_of(canary->data()))});
  EXPECT_TRUE(exit.exited && exit.code == 0) << exit.describe();
  auto report = sandbox_->report();
  ASSERT_TRUE(report);
  ASSERT_EQ(report->probe_done, 1u);
  EXPECT_EQ(report->probe_result, -EFAULT);
  EXPECT_TRUE(std::all_of(canary->bytes(), canary->bytes() + canary->size(), [](std::byte b) { return b == std::byte{0xc5}; }));
}

TEST_F(GuestProcessTest, AWritePastTheEndOfTheDiskFailsAndTheImageKeepsItsSize) {
  ASSERT_NO_FATAL_FAILURE(start());
  const GuestExitStatus exit = run({"--scenario", "probe", "--probe-op", "write", "--probe-offset", std::to_string(kDisk)});
  EXPECT_TRUE(exit.exited && exit.code == 0) << exit.describe();
  auto report = sandbox_->report();
  ASSERT_TRUE(report);
  EXPECT_EQ(report->probe_result, -ENOSPC);
  EXPECT_EQ(test::file_size(image_), kDisk);
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

}  // namespace
}  // namespace rf
