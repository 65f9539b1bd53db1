// The device lifecycle (GuestDevice: start, quiesce, resume, stop), in both modes, with the
// reference driver attached in this process playing the guest: the state machine refuses calls
// out of order; quiesce returns only when every request the device took has its completion in
// the guest CQ; stop with requests in flight accounts for every one and releases pinned memory;
// and a thousand create/destroy cycles leave no descriptor, mapping, thread or pinned page behind.
#include <algorithm>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "device_fixture.h"
#include "fuzz/live/resource_usage.h"
#include "util/mmap_region.h"

namespace rf::test {
namespace {

using namespace std::chrono_literals;

constexpr std::uint32_t kBigIo = 1u << 20;  // the largest transfer the descriptor allows

class LifecycleTest : public DeviceFixture, public ::testing::WithParamInterface<abi::Mode> {
 protected:
  void SetUp() override { require(GetParam()); }

  DeviceSetup setup(unsigned queue_depth = 64) const {
    DeviceSetup s;
    s.mode = GetParam();
    s.passthrough.queue_depth = queue_depth;
    s.mediated.queue_depth = queue_depth;
    return s;
  }

  // Queues `count` 1 MiB writes of the scratch buffer over the disk and publishes them, without
  // reaping: enough data that some are still in the kernel when the test acts.
  void queue_big_writes(std::uint32_t count) {
    for (std::uint32_t i = 0; i < count; ++i) {
      const guest::Request r{guest::Op::Write, 0, (i % (kFixtureDisk / kBigIo)) * kBigIo, kScratch, kBigIo, i};
      ASSERT_EQ(driver_.queue(r), guest::RequestStatus::Ok) << i;
    }
    ASSERT_EQ(driver_.submit(), count);
  }

  // Every completion already in the guest CQ, without waiting.
  std::vector<guest::Completion> reap_now() {
    std::vector<guest::Completion> all(driver_.depth() * 2);
    all.resize(driver_.reap(all.data(), static_cast<std::uint32_t>(all.size())));
    return all;
  }
};

// Waits (bounded) until what the process holds is back at `before`: the kernel frees a closed
// ring, and unpins its buffers, asynchronously.
fuzz::ResourceUsage settle_to(const fuzz::ResourceUsage& before) {
  fuzz::ResourceUsage now = fuzz::ResourceUsage::now();
  for (int i = 0; i < 500 && (now.pinned_kib != before.pinned_kib || now.fds != before.fds || now.threads > before.threads);
       ++i) {
    std::this_thread::sleep_for(10ms);
    now = fuzz::ResourceUsage::now();
  }
  return now;
}

// The names of the process's named mappings (files, memfds, the kernel's io_uring ring
// mappings, [heap]), sorted. Unnamed anonymous mappings are left out: the C library's allocator
// arenas and cached thread stacks are among them and come and go on their own schedule (a CI run
// once ended 1,000 passthrough cycles with 5 more of them). The library's own anonymous
// mappings are counted exactly by MmapRegion::live_count().
std::vector<std::string> named_mappings() {
  std::ifstream maps("/proc/self/maps");
  std::vector<std::string> names;
  for (std::string line; std::getline(maps, line);) {
    // address perms offset dev inode [pathname]
    std::istringstream fields(line);
    std::string address, perms, offset, dev, inode, name;
    fields >> address >> perms >> offset >> dev >> inode;
    std::getline(fields >> std::ws, name);
    if (!name.empty()) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

TEST_P(LifecycleTest, TheStateMachineRefusesCallsOutOfOrder) {
  DeviceSetup s = setup();
  s.start_device = false;
  ASSERT_NO_FATAL_FAILURE(start(s));
  GuestDevice& d = *device_;
  EXPECT_EQ(d.state(), DeviceState::Created);
  EXPECT_EQ(d.quiesce(1s).error().code, DeviceErrc::WrongState);
  EXPECT_EQ(d.resume().error().code, DeviceErrc::WrongState);
  ASSERT_TRUE(d.start());
  EXPECT_EQ(d.state(), DeviceState::Running);
  const auto again = d.start();
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, DeviceErrc::WrongState);
  EXPECT_NE(again.error().message.find("running"), std::string::npos) << again.error().message;
  EXPECT_EQ(d.resume().error().code, DeviceErrc::WrongState);
  ASSERT_TRUE(d.quiesce(5s));
  EXPECT_EQ(d.state(), DeviceState::Quiesced);
  EXPECT_TRUE(d.quiesce(5s)) << "quiescing a quiesced device does nothing";
  ASSERT_TRUE(d.resume());
  EXPECT_EQ(d.state(), DeviceState::Running);
  // The guest still gets service after a quiesce/resume round trip.
  const auto c = one(guest::Request{guest::Op::Write, 0, 0, kScratch, 4096, 7});
  EXPECT_EQ(c.result, 4096);
  d.stop(1s);
  EXPECT_EQ(d.state(), DeviceState::Stopped);
  EXPECT_EQ(d.start().error().code, DeviceErrc::WrongState);
  EXPECT_EQ(d.quiesce(1s).error().code, DeviceErrc::WrongState);
  const DeviceStopReport second = d.stop(1s);
  EXPECT_EQ(second.drained + second.cancelled, 0u) << "a second stop does nothing";
}

TEST_P(LifecycleTest, QuiesceReturnsOnlyWhenEveryRequestTakenHasCompleted) {
  ASSERT_NO_FATAL_FAILURE(start(setup(64)));
  ASSERT_NO_FATAL_FAILURE(queue_big_writes(64));
  const auto before = device_->in_flight();
  ASSERT_TRUE(device_->quiesce(30s));
  EXPECT_EQ(device_->in_flight(), std::optional<std::uint64_t>(0));
  // Everything is in the CQ already: reaping without waiting finds all 64, each a full write.
  const auto done = reap_now();
  EXPECT_EQ(done.size(), 64u) << "in flight when quiesce was called: " << before.value_or(0);
  for (const auto& c : done) EXPECT_EQ(c.result, static_cast<std::int32_t>(kBigIo)) << "tag " << c.tag;
  std::printf("in flight when quiesce was called: %llu of 64\n", static_cast<unsigned long long>(before.value_or(0)));

  if (GetParam() == abi::Mode::Mediated) {
    // Quiesced, the mediator takes nothing the guest publishes...
    ASSERT_NO_FATAL_FAILURE(queue_big_writes(8));
    const std::uint64_t consumed = mediated_->counters().consumed;
    std::this_thread::sleep_for(50ms);
    EXPECT_EQ(mediated_->counters().consumed, consumed);
    EXPECT_TRUE(reap_now().empty());
  } else {
    // In passthrough the kernel's SQ thread reads the SQ by itself: a quiesced device has a
    // paused guest, and resumes with it.
    ASSERT_NO_FATAL_FAILURE(queue_big_writes(8));
  }
  // ...until it resumes, and then it takes them all.
  ASSERT_TRUE(device_->resume());
  std::vector<guest::Completion> after(8);
  std::uint32_t got = 0;
  while (got < 8) {
    const std::uint32_t n = driver_.reap_wait(after.data() + got, 8 - got);
    ASSERT_GT(n, 0u);
    got += n;
  }
  for (const auto& c : after) EXPECT_EQ(c.result, static_cast<std::int32_t>(kBigIo));
}

TEST_P(LifecycleTest, StopWithRequestsInFlightAccountsForEveryOneAndUnpinsGuestRam) {
  for (int i = 0; i < 500 && fuzz::ResourceUsage::now().pinned_kib != 0; ++i) std::this_thread::sleep_for(10ms);
  const fuzz::ResourceUsage before = fuzz::ResourceUsage::now();
  ASSERT_NO_FATAL_FAILURE(start(setup(256)));
  EXPECT_GT(fuzz::ResourceUsage::now().pinned_kib, before.pinned_kib) << "guest RAM is pinned while the ring lives";
  ASSERT_NO_FATAL_FAILURE(queue_big_writes(256));
  const DeviceStopReport report = device_->stop(0ms);  // no time to drain
  EXPECT_EQ(device_->state(), DeviceState::Stopped);
  ASSERT_TRUE(report.counted);
  EXPECT_TRUE(report.released) << "stop returns once the kernel has freed the ring";
  std::printf("stop with 256 published: %llu drained, %llu cancelled\n", static_cast<unsigned long long>(report.drained),
              static_cast<unsigned long long>(report.cancelled));

  // Every request the guest published gets exactly one completion: a full write, or
  // -ECANCELED (mediated: posted by the mediator; passthrough: posted by the kernel into the CQ
  // in guest RAM as it cancels, so wait for it).
  std::vector<guest::Completion> done;
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (done.size() < 256 && std::chrono::steady_clock::now() < deadline) {
    for (const auto& c : reap_now()) done.push_back(c);
    if (done.size() < 256) std::this_thread::sleep_for(1ms);
  }
  std::uint64_t cancelled = 0;
  for (const auto& c : done) {
    if (c.result == -ECANCELED) {
      ++cancelled;
    } else {
      EXPECT_EQ(c.result, static_cast<std::int32_t>(kBigIo)) << "tag " << c.tag;
    }
  }
  if (GetParam() == abi::Mode::Mediated) {
    EXPECT_EQ(done.size(), 256u);
    EXPECT_EQ(cancelled, report.cancelled) << "the mediator told the guest about each request it cancelled";
    EXPECT_EQ(mediated_->counters().cancelled, report.cancelled);
  } else {
    // The kernel took what the SQ thread had read before the ring closed; it completes or
    // cancels each of those. SQEs it never read get no completion: the ring is gone.
    EXPECT_LE(done.size(), 256u);
    EXPECT_GE(done.size(), report.cancelled);
  }
  EXPECT_TRUE(reap_now().empty()) << "no request completes twice";
  device_.reset();
  const fuzz::ResourceUsage after = settle_to(before);
  EXPECT_EQ(after.pinned_kib, before.pinned_kib) << "the kernel released the pinned guest RAM";
  EXPECT_LE(after.threads, before.threads);
}

TEST_P(LifecycleTest, AThousandCreateDestroyCyclesLeakNothing) {
  const std::string image = make_image(dir_, "cycles.img", kFixtureDisk);
  ASSERT_FALSE(image.empty());
  auto disk = Disk::open(image, DiskOptions{});
  ASSERT_TRUE(disk) << disk.error().message;
  const std::vector<RegionLayout> layout{{GuestAddress{0}, kFixtureRam, false}};
  auto memory = GuestMemoryBuilder::create(layout, MemoryBacking::Anonymous);
  ASSERT_TRUE(memory) << memory.error().message;

  // One cycle: what a VMM does for a device (create, start, one request, stop, destroy).
  const auto cycle = [&](std::uint32_t i) {
    std::vector<Disk> disks;
    auto handle = disk->duplicate();
    ASSERT_TRUE(handle) << handle.error().message;
    disks.push_back(std::move(*handle));
    std::unique_ptr<GuestDevice> device;
    if (GetParam() == abi::Mode::Passthrough) {
      PassthroughConfig config;
      config.queue_depth = 8;
      auto d = PassthroughDevice::create(*memory, std::move(disks), config);
      ASSERT_TRUE(d) << "cycle " << i << ": " << d.error().message;
      device = std::move(*d);
    } else {
      MediatedConfig config;
      config.queue_depth = 8;
      auto d = MediatedDevice::create(*memory, std::move(disks), config);
      ASSERT_TRUE(d) << "cycle " << i << ": " << d.error().message;
      device = std::move(*d);
    }
    ASSERT_TRUE(device->start());
    guest::Driver driver;
    const guest::Platform platform{device.get(), fixture_kick, fixture_wait, address_of((*memory)->regions()[0].host), kFixtureRam};
    ASSERT_EQ(driver.attach(platform, device->descriptor_address().value()), guest::AttachStatus::Ok);
    ASSERT_EQ(driver.queue(guest::Request{guest::Op::Write, 0, (i % 1024) * 4096ull, kScratch, 4096, i}), guest::RequestStatus::Ok);
    driver.submit();
    guest::Completion c;
    ASSERT_EQ(driver.reap_wait(&c, 1), 1u);
    ASSERT_EQ(c.result, 4096) << "cycle " << i;
    const DeviceStopReport report = device->stop(1s);
    ASSERT_TRUE(report.released) << "cycle " << i << ": the kernel let go of guest RAM";
  };

  ASSERT_NO_FATAL_FAILURE(cycle(0));  // warm-up: lazily created things (thread-local buffers, the policy cache)
  const fuzz::ResourceUsage before = fuzz::ResourceUsage::now();
  const std::vector<std::string> named_before = named_mappings();
  const std::size_t regions_before = MmapRegion::live_count();
  std::uint64_t most_pinned = 0;
  for (std::uint32_t i = 1; i <= 1000; ++i) {
    ASSERT_NO_FATAL_FAILURE(cycle(i));
    if (i % 50 == 0) most_pinned = std::max(most_pinned, fuzz::ResourceUsage::now().pinned_kib);
  }
  const fuzz::ResourceUsage after = settle_to(before);
  std::printf("after 1000 cycles: fds %llu -> %llu, threads %llu -> %llu, pinned KiB %llu -> %llu (most seen %llu), named mappings %zu -> %zu, library mappings %zu -> %zu\n",
              static_cast<unsigned long long>(before.fds), static_cast<unsigned long long>(after.fds),
              static_cast<unsigned long long>(before.threads), static_cast<unsigned long long>(after.threads),
              static_cast<unsigned long long>(before.pinned_kib), static_cast<unsigned long long>(after.pinned_kib),
              static_cast<unsigned long long>(most_pinned), named_before.size(), named_mappings().size(), regions_before,
              MmapRegion::live_count());
  EXPECT_EQ(after.fds, before.fds);
  EXPECT_EQ(after.pinned_kib, before.pinned_kib);
  EXPECT_LE(after.threads, before.threads);
  EXPECT_EQ(named_mappings(), named_before) << "a ring, memfd or file mapping was left behind";
  EXPECT_EQ(MmapRegion::live_count(), regions_before) << "a mapping of the library's own was left behind";
  // stop() returns once the kernel has freed the ring (report.released), so rings never pile up.
  EXPECT_EQ(most_pinned, before.pinned_kib);
}

INSTANTIATE_TEST_SUITE_P(BothModes, LifecycleTest, ::testing::Values(abi::Mode::Passthrough, abi::Mode::Mediated), test::mode_param_name);

}  // namespace
}  // namespace rf::test
