// The reference guest driver against a real passthrough device, in this process (DeviceFixture).
#include <poll.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "device_fixture.h"

namespace rf {
namespace {

using test::kScratch;
constexpr std::uint64_t kRam = test::kFixtureRam;
constexpr std::uint64_t kDisk = test::kFixtureDisk;

// Every test runs with both submitters: the device thread (the default, bounded) and the
// kernel's SQPOLL thread (opt-in): the guest sees the same ring either way.
class PassthroughDriverTest : public test::DeviceFixture, public ::testing::WithParamInterface<PassthroughSubmitter> {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(require(abi::Mode::Passthrough));
    if (GetParam() == PassthroughSubmitter::KernelSqpoll) RF_REQUIRE(test::sqpoll_feature());
  }
  void start_with(DiskOptions options, PassthroughConfig config = {}) {
    test::DeviceSetup setup;
    setup.disk = options;
    setup.passthrough = config;
    setup.passthrough.submitter = GetParam();
    ASSERT_NO_FATAL_FAILURE(TestDevice::start(setup));
  }
  void start() { start_with({}); }
};

std::string submitter_name(const ::testing::TestParamInfo<PassthroughSubmitter>& info) {
  return info.param == PassthroughSubmitter::DeviceThread ? "DeviceThread" : "KernelSqpoll";
}

TEST_P(PassthroughDriverTest, DiscoversTheDeviceFromTheDescriptor) {
  ASSERT_NO_FATAL_FAILURE(start());
  EXPECT_EQ(driver_.header().mode, abi::Mode::Passthrough);
  ASSERT_EQ(driver_.disk_count(), 1u);
  EXPECT_EQ(driver_.disk(0).size_bytes, kDisk);
  EXPECT_EQ(driver_.disk(0).flags & abi::kDiskReadOnly, 0u);
  ASSERT_EQ(driver_.window_count(), 1u);
  EXPECT_EQ(driver_.window(0).gpa, 0u);
  EXPECT_EQ(driver_.window(0).length, kRam);
  // The bias turns a GPA into the host address the kernel checks.
  EXPECT_EQ(driver_.window(0).gpa + driver_.window(0).host_bias, address_of(host(0)));
  EXPECT_EQ(driver_.depth(), passthrough_->ring_info().sq_entries);
}

TEST_P(PassthroughDriverTest, WritesFlushesAndReadsBack) {
  ASSERT_NO_FATAL_FAILURE(start());
  std::memset(host(kScratch), 0x5a, 4096);
  const guest::Completion w = one({guest::Op::Write, 0, 8192, kScratch, 4096, 1});
  EXPECT_EQ(w.tag, 1u);
  EXPECT_EQ(w.result, 4096);
  EXPECT_EQ(one({guest::Op::Flush, 0, 0, 0, 0, 2}).result, 0);
  const guest::Completion r = one({guest::Op::Read, 0, 8192, kScratch + 4096, 4096, 3});
  EXPECT_EQ(r.result, 4096);
  EXPECT_EQ(std::memcmp(host(kScratch), host(kScratch + 4096), 4096), 0);
  EXPECT_EQ(driver_.in_flight(), 0u);
  EXPECT_EQ(driver_.counters().completed, 3u);
}

TEST_P(PassthroughDriverTest, RefusesBadRequestsBeforeTheyReachTheRing) {
  ASSERT_NO_FATAL_FAILURE(start());
  using guest::Op;
  using guest::RequestStatus;
  EXPECT_EQ(driver_.queue({Op::Read, 1, 0, kScratch, 4096, 0}), RequestStatus::NoSuchDisk);
  EXPECT_EQ(driver_.queue({Op::Read, 0, 1, kScratch, 4096, 0}), RequestStatus::Misaligned);
  EXPECT_EQ(driver_.queue({Op::Read, 0, 0, kScratch, 0, 0}), RequestStatus::Misaligned);
  EXPECT_EQ(driver_.queue({Op::Read, 0, kDisk - 4096, kScratch, 8192, 0}), RequestStatus::OutOfRange);
  EXPECT_EQ(driver_.queue({Op::Read, 0, UINT64_MAX - 4095, kScratch, 4096, 0}), RequestStatus::OutOfRange);
  EXPECT_EQ(driver_.queue({Op::Read, 0, 0, kScratch, 2u << 20, 0}), RequestStatus::TooLong);
  EXPECT_EQ(driver_.queue({Op::Read, 0, 0, kRam - 2048, 4096, 0}), RequestStatus::NoWindow);
  EXPECT_EQ(driver_.in_flight(), 0u);
  EXPECT_EQ(driver_.submit(), 0u);
}

TEST_P(PassthroughDriverTest, KeepsAtMostDepthRequestsInFlight) {
  ASSERT_NO_FATAL_FAILURE(start());
  std::uint32_t queued = 0;
  while (driver_.queue({guest::Op::Read, 0, 0, kScratch, 4096, queued}) == guest::RequestStatus::Ok) ++queued;
  EXPECT_EQ(queued, driver_.depth());
  EXPECT_EQ(driver_.queue({guest::Op::Read, 0, 0, kScratch, 4096, 0}), guest::RequestStatus::QueueFull);
  EXPECT_EQ(driver_.submit(), queued);
  guest::Completion done[256];
  std::uint32_t reaped = 0;
  while (driver_.in_flight() != 0) reaped += driver_.reap_wait(done, 256);
  EXPECT_EQ(reaped, queued);
}

TEST_P(PassthroughDriverTest, RingsTheDoorbellWhenTheDeviceSleeps) {
  PassthroughConfig config;
  config.sqpoll_idle = std::chrono::milliseconds(1);
  config.poll_idle = std::chrono::microseconds(10);
  ASSERT_NO_FATAL_FAILURE(start_with({}, config));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the SQ thread or the device thread goes to sleep
  EXPECT_EQ(one({guest::Op::Read, 0, 0, kScratch, 4096, 7}).result, 4096);
  EXPECT_GE(driver_.counters().kicks, 1u);
  for (int i = 0; i < 100 && passthrough_->doorbells() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_GE(passthrough_->doorbells(), 1u);
}

TEST_P(PassthroughDriverTest, APollingGuestTurnsNotificationsOff) {
  ASSERT_NO_FATAL_FAILURE(start());
  driver_.set_notifications(false);
  const abi::RingGeometry& g = driver_.header().ring;
  std::uint32_t flags = 0;
  std::memcpy(&flags, host(g.cq_flags), 4);
  EXPECT_EQ(flags & abi::kCqFlagNotifyDisabled, abi::kCqFlagNotifyDisabled);
  ASSERT_EQ(driver_.queue({guest::Op::Read, 0, 0, kScratch, 4096, 5}), guest::RequestStatus::Ok);
  driver_.submit();
  guest::Completion c;
  while (driver_.reap(&c, 1) == 0) {
  }
  EXPECT_EQ(c.result, 4096);
  // The kernel did not signal the eventfd for it.
  pollfd p{device_->notify_fd(), POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 0), 0);
}

TEST_P(PassthroughDriverTest, AnAddressOutsideGuestRamCompletesWithEfault) {
  ASSERT_NO_FATAL_FAILURE(start());
  auto canary = MmapRegion::map_anonymous(page_size());
  ASSERT_TRUE(canary);
  std::memset(canary->data(), 0xc5, canary->size());
  std::memset(host(kScratch), 0x11, 4096);
  ASSERT_EQ(one({guest::Op::Write, 0, 0, kScratch, 4096, 1}).result, 4096);  // non-0xc5 data on disk
  EXPECT_EQ(one_raw(raw(abi::kOpReadFixed, address_of(canary->data()), 0)).result, -EFAULT);
  for (std::size_t i = 0; i < canary->size(); ++i) ASSERT_EQ(canary->bytes()[i], std::byte{0xc5}) << "byte " << i;
  // Just past guest RAM, and straddling its end.
  EXPECT_EQ(one_raw(raw(abi::kOpReadFixed, address_of(host(kRam)), 0)).result, -EFAULT);
  EXPECT_EQ(one_raw(raw(abi::kOpReadFixed, address_of(host(kRam - 2048)), 0)).result, -EFAULT);
}

TEST_P(PassthroughDriverTest, TheLoopDeviceBoundsOffsets) {
  ASSERT_NO_FATAL_FAILURE(start());
  EXPECT_EQ(device_->disks().front().kind(), DiskKind::LoopBackedFile);
  const std::uint64_t addr = address_of(host(kScratch));
  EXPECT_EQ(one_raw(raw(abi::kOpWriteFixed, addr, kDisk)).result, -ENOSPC);
  EXPECT_EQ(one_raw(raw(abi::kOpWriteFixed, addr, 1ull << 40)).result, -ENOSPC);
  EXPECT_EQ(test::file_size(image_), kDisk);
}

TEST_P(PassthroughDriverTest, WithoutTheBoundAWritePastTheEndGrowsTheImage) {
  // Why the bound exists: the kernel does not check offsets against a regular file's size.
  DiskOptions options;
  options.offset_bound = OffsetBound::None;
  ASSERT_NO_FATAL_FAILURE(start_with(options));
  EXPECT_EQ(device_->disks().front().kind(), DiskKind::UnboundedFile);
  EXPECT_EQ(one_raw(raw(abi::kOpWriteFixed, address_of(host(kScratch)), 1ull << 30)).result, 4096);
  EXPECT_EQ(test::file_size(image_), (1ull << 30) + 4096);
}

TEST_P(PassthroughDriverTest, AReadOnlyDiskGetsTheReadOnlyPolicy) {
  DiskOptions options;
  options.read_only = true;
  ASSERT_NO_FATAL_FAILURE(start_with(options));
  EXPECT_EQ(driver_.disk(0).flags & abi::kDiskReadOnly, abi::kDiskReadOnly);
  EXPECT_EQ(driver_.queue({guest::Op::Write, 0, 0, kScratch, 4096, 0}), guest::RequestStatus::ReadOnlyDisk);
  // A guest that writes anyway: the policy (blk-passthrough-ro) denies the opcode.
  EXPECT_EQ(one_raw(raw(abi::kOpWriteFixed, address_of(host(kScratch)), 0)).result, -EACCES);
  EXPECT_EQ(one({guest::Op::Read, 0, 0, kScratch, 4096, 1}).result, 4096);
}

INSTANTIATE_TEST_SUITE_P(Submitters, PassthroughDriverTest,
                         ::testing::Values(PassthroughSubmitter::DeviceThread, PassthroughSubmitter::KernelSqpoll),
                         submitter_name);

// The SQPOLL threads behind this process's io_uring instances, from each ring's fdinfo
// ("SqThread: <tid>", -1 without one): distinct thread ids.
// The SQPOLL threads the process's rings name in fdinfo. A ring whose SQPOLL thread holds its
// lock at that moment prints -1 (the kernel only try-locks it): `want` retries for up to a second
// until that many are seen, and returns what was seen last.
std::set<long> sqpoll_threads_once() {
  std::set<long> threads;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    if (std::filesystem::read_symlink(entry.path(), ec).string() != "anon_inode:[io_uring]") continue;
    std::ifstream info("/proc/self/fdinfo/" + entry.path().filename().string());
    for (std::string line; std::getline(info, line);) {
      if (line.rfind("SqThread:", 0) == 0) {
        const long tid = std::stol(line.substr(9));
        if (tid > 0) threads.insert(tid);
      }
    }
  }
  return threads;
}

std::set<long> sqpoll_threads(std::size_t want) {
  std::set<long> seen = sqpoll_threads_once();
  for (int i = 0; i < 100 && seen.size() != want; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    seen = sqpoll_threads_once();
  }
  return seen;
}

TEST(PassthroughSharedSqpoll, ADeviceCanShareAnotherDevicesSqpollThread) {
  RF_REQUIRE(test::sqpoll_feature());
  RF_REQUIRE(test::no_mmap_feature());
  RF_REQUIRE(test::restrictions_feature());
  RF_REQUIRE(test::loop_device_feature());
  for (bool share : {false, true}) {
    test::TestDevice first, second;
    test::DeviceSetup setup;
    setup.passthrough.submitter = PassthroughSubmitter::KernelSqpoll;
    ASSERT_NO_FATAL_FAILURE(first.start(setup));
    if (share) setup.passthrough.share_sqpoll_with = first.passthrough_;
    ASSERT_NO_FATAL_FAILURE(second.start(setup));
    EXPECT_EQ(sqpoll_threads(share ? 1u : 2u).size(), share ? 1u : 2u) << (share ? "shared" : "separate");
    // Both rings are served.
    for (test::TestDevice* d : {&first, &second}) {
      EXPECT_EQ(d->one({guest::Op::Read, 0, 4096, kScratch, 4096, 1}).result, 4096) << (share ? "shared" : "separate");
    }
  }
}

TEST(PassthroughSharedSqpoll, OnlyTwoSqpollDevicesCanShareAThread) {
  RF_REQUIRE(test::sqpoll_feature());
  RF_REQUIRE(test::no_mmap_feature());
  RF_REQUIRE(test::no_sqarray_feature());
  RF_REQUIRE(test::restrictions_feature());
  RF_REQUIRE(test::loop_device_feature());
  test::TestDevice first;
  ASSERT_NO_FATAL_FAILURE(first.start());  // the device thread: no SQPOLL thread to share
  TempDir dir("ringfence-test");
  auto disk = Disk::open(test::make_image(dir, "d.img", 1 << 20), {});
  ASSERT_TRUE(disk) << disk.error().message;
  const RegionLayout layout[] = {{GuestAddress{0}, 4 << 20, false}};
  auto memory = GuestMemoryBuilder::create(layout, MemoryBacking::Anonymous);
  ASSERT_TRUE(memory);
  std::vector<Disk> disks;
  disks.push_back(std::move(*disk));
  PassthroughConfig config;
  config.submitter = PassthroughSubmitter::KernelSqpoll;
  config.share_sqpoll_with = first.passthrough_;
  auto device = PassthroughDevice::create(*memory, std::move(disks), config);
  ASSERT_FALSE(device);
  EXPECT_EQ(device.error().code, DeviceErrc::InvalidConfig);
  EXPECT_NE(device.error().message.find("share_sqpoll_with"), std::string::npos) << device.error().message;
}

TEST(PassthroughDeviceConfig, RefusesAWindowOutsideGuestRam) {
  RF_REQUIRE(test::loop_device_feature());
  TempDir dir("ringfence-test");
  auto disk = Disk::open(test::make_image(dir, "d.img", 1 << 20), {});
  ASSERT_TRUE(disk) << disk.error().message;
  const RegionLayout layout[] = {{GuestAddress{0}, 1 << 20, false}};
  auto memory = GuestMemoryBuilder::create(layout, MemoryBacking::Anonymous);
  ASSERT_TRUE(memory);
  std::vector<Disk> disks;
  disks.push_back(std::move(*disk));
  PassthroughConfig config;
  config.device_window = GuestAddress{(1 << 20) - page_size()};  // the rings would run past the end
  auto device = PassthroughDevice::create(*memory, std::move(disks), config);
  ASSERT_FALSE(device);
  EXPECT_EQ(device.error().code, DeviceErrc::InvalidConfig);
  EXPECT_NE(device.error().message.find("device window"), std::string::npos) << device.error().message;
}

}  // namespace
}  // namespace rf
