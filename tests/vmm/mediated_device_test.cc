// The mediated device with the reference driver in this process (DeviceFixture), and a guest
// that misbehaves: refused SQEs, a jumping tail, a flood without reaping, SQE fields flipped
// under the mediator's feet.
#include <poll.h>
#include <sys/resource.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <thread>

#include "device_fixture.h"
#include "mediated/guest_ring.h"

namespace rf {
namespace {

using test::kScratch;
constexpr std::uint64_t kDisk = test::kFixtureDisk;

std::chrono::microseconds cpu_time() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  return std::chrono::seconds(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         std::chrono::microseconds(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
}

template <typename Predicate>
bool eventually(Predicate done, std::chrono::milliseconds limit = std::chrono::milliseconds(5000)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

class MediatedDeviceTest : public test::DeviceFixture {
 protected:
  void SetUp() override { ASSERT_NO_FATAL_FAILURE(require(abi::Mode::Mediated)); }
  void start_mediated(test::DeviceSetup setup = {}) {
    setup.mode = abi::Mode::Mediated;
    ASSERT_NO_FATAL_FAILURE(start(setup));
  }
  // The guest ring as the guest sees it (for tests that write its indices directly).
  std::uint32_t* field(std::uint64_t gpa) {
    return reinterpret_cast<std::uint32_t*>(host(gpa));  // SAFETY: ring fields are 4-aligned in region 0
  }
};

TEST_F(MediatedDeviceTest, TheGuestSeesGuestPhysicalAddressesOnly) {
  ASSERT_NO_FATAL_FAILURE(start_mediated());
  EXPECT_EQ(driver_.header().mode, abi::Mode::Mediated);
  ASSERT_EQ(driver_.window_count(), 1u);
  EXPECT_EQ(driver_.window(0).host_bias, 0u);
  EXPECT_EQ(driver_.header().ring.sq_array, 0u);
  std::memset(host(kScratch), 0x3c, 4096);
  EXPECT_EQ(one({guest::Op::Write, 0, 4096, kScratch, 4096, 1}).result, 4096);
  EXPECT_EQ(one({guest::Op::Flush, 0, 0, 0, 0, 2}).result, 0);
  EXPECT_EQ(one({guest::Op::Read, 0, 4096, kScratch + 4096, 4096, 3}).result, 4096);
  EXPECT_EQ(std::memcmp(host(kScratch), host(kScratch + 4096), 4096), 0);
  const MediatorCounters c = mediated_->counters();
  EXPECT_EQ(c.consumed, 3u);
  EXPECT_EQ(c.submitted, 3u);
  EXPECT_EQ(c.completed, 3u);
  EXPECT_EQ(c.refused_total(), 0u);
  EXPECT_EQ(c.broken, BrokenReason::None);
}

TEST_F(MediatedDeviceTest, ARefusedSqeCompletesWithItsRulesErrnoAndNeverReachesTheKernel) {
  std::atomic<int> kernel_sqes{0};
  test::DeviceSetup setup;
  setup.mediated.mediator.on_kernel_submit = [&](const Sqe&) { kernel_sqes.fetch_add(1); };
  ASSERT_NO_FATAL_FAILURE(start_mediated(setup));
  struct Case {
    abi::GuestSqe sqe;
    int expected;
  };
  abi::GuestSqe bad_flags = raw(abi::kOpReadFixed, kScratch, 0);
  bad_flags.flags |= 1u << 2;  // IO_LINK
  abi::GuestSqe bad_fd = raw(abi::kOpReadFixed, kScratch, 0);
  bad_fd.fd = 1;
  abi::GuestSqe zero_len = raw(abi::kOpReadFixed, kScratch, 0);
  zero_len.len = 0;
  abi::GuestSqe misaligned = raw(abi::kOpReadFixed, kScratch, 100);
  const Case cases[] = {
      {raw(abi::kOpNop, kScratch, 0), -EACCES},
      {raw(static_cast<std::uint8_t>(SqeOpcode::Read), kScratch, 0), -EACCES},
      {bad_flags, -EPERM},
      {bad_fd, -EBADF},
      {raw(abi::kOpWriteFixed, kScratch, kDisk), -ENXIO},
      {zero_len, -EMSGSIZE},
      {misaligned, -EINVAL},
      {raw(abi::kOpReadFixed, test::kFixtureRam, 0), -EFAULT},
      {raw(abi::kOpReadFixed, test::kFixtureRam - 2048, 0), -EFAULT},
  };
  for (const Case& c : cases) EXPECT_EQ(one_raw(c.sqe).result, c.expected) << "opcode " << int(c.sqe.opcode);
  EXPECT_EQ(kernel_sqes.load(), 0);
  const MediatorCounters counters = mediated_->counters();
  EXPECT_EQ(counters.refused_total(), std::size(cases));
  EXPECT_EQ(counters.submitted, 0u);
  EXPECT_EQ(counters.refused[static_cast<std::size_t>(RefusalRule::Opcode)], 2u);
  EXPECT_EQ(counters.refused[static_cast<std::size_t>(RefusalRule::Memory)], 2u);
  // The device carries on.
  EXPECT_EQ(one({guest::Op::Read, 0, 0, kScratch, 4096, 1}).result, 4096);
  EXPECT_EQ(kernel_sqes.load(), 1);
}

TEST_F(MediatedDeviceTest, AReadOnlyDiskIsRefusedByTheMediator) {
  test::DeviceSetup setup;
  setup.disk.read_only = true;
  ASSERT_NO_FATAL_FAILURE(start_mediated(setup));
  EXPECT_EQ(one_raw(raw(abi::kOpWriteFixed, kScratch, 0)).result, -EROFS);
  EXPECT_EQ(one({guest::Op::Read, 0, 0, kScratch, 4096, 1}).result, 4096);
}

TEST_F(MediatedDeviceTest, ASpanAcrossTwoRegionsIsRefusedNotSplit) {
  test::DeviceSetup setup;
  setup.regions = {{GuestAddress{0}, 8ull << 20, false}, {GuestAddress{8ull << 20}, 8ull << 20, false}};
  ASSERT_NO_FATAL_FAILURE(start_mediated(setup));
  ASSERT_EQ(driver_.window_count(), 2u);
  EXPECT_EQ(one_raw(raw(abi::kOpReadFixed, (8ull << 20) - 2048, 0)).result, -EFAULT);
  EXPECT_EQ(one_raw(raw(abi::kOpReadFixed, (8ull << 20) - 4096, 0)).result, 4096);  // just inside region 0
  EXPECT_EQ(one_raw(raw(abi::kOpReadFixed, 8ull << 20, 0)).result, 4096);           // region 1
}

TEST_F(MediatedDeviceTest, ATailJumpMarksTheDeviceBrokenWithoutSpinning) {
  ASSERT_NO_FATAL_FAILURE(start_mediated());
  const abi::RingGeometry& g = driver_.header().ring;
  std::atomic_ref<std::uint32_t>(*field(g.sq_tail)).store(g.sq_entries + 1, std::memory_order_release);
  const std::uint64_t one_kick = 1;
  ASSERT_EQ(::write(device_->kick_fd(), &one_kick, 8), 8);
  ASSERT_TRUE(eventually([&] { return mediated_->counters().broken != BrokenReason::None; }));
  const MediatorCounters c = mediated_->counters();
  EXPECT_EQ(c.broken, BrokenReason::SqTailJump);
  EXPECT_NE(c.broken_detail.find("ahead of the head"), std::string::npos) << c.broken_detail;
  EXPECT_EQ(c.consumed, 0u);
  // Broken means idle: over 200 ms the whole process uses far less than one CPU.
  const auto before = cpu_time();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_LT(cpu_time() - before, std::chrono::milliseconds(50));
  // ... and the device still tears down (no hang): the fixture destroys it.
}

TEST_F(MediatedDeviceTest, ACqHeadAheadOfTheTailMarksTheDeviceBroken) {
  ASSERT_NO_FATAL_FAILURE(start_mediated());
  ASSERT_EQ(one({guest::Op::Read, 0, 0, kScratch, 4096, 1}).result, 4096);
  // The guest claims to have reaped completions that were never posted, then submits.
  const abi::RingGeometry& g = driver_.header().ring;
  std::atomic_ref<std::uint32_t>(*field(g.cq_head)).store(1 + 5, std::memory_order_release);
  ASSERT_EQ(driver_.queue({guest::Op::Read, 0, 0, kScratch, 4096, 2}), guest::RequestStatus::Ok);
  driver_.submit();
  const std::uint64_t one_kick = 1;
  ASSERT_EQ(::write(device_->kick_fd(), &one_kick, 8), 8);
  ASSERT_TRUE(eventually([&] { return mediated_->counters().broken != BrokenReason::None; }));
  const MediatorCounters c = mediated_->counters();
  EXPECT_EQ(c.broken, BrokenReason::CqHeadJump);
  EXPECT_NE(c.broken_detail.find("CQ head"), std::string::npos) << c.broken_detail;
  EXPECT_EQ(c.consumed, 1u) << "nothing is taken once the CQ cannot be trusted";
}

TEST_F(MediatedDeviceTest, AGuestThatNeverReapsCannotMakeTheMediatorTakeMore) {
  ASSERT_NO_FATAL_FAILURE(start_mediated());
  const abi::RingGeometry& g = driver_.header().ring;
  // Keep the SQ full and never read the CQ, for a while.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(300);
  std::uint64_t offered = 0;
  auto* sq_tail = field(g.sq_tail);
  auto* sq_head = field(g.sq_head);
  while (std::chrono::steady_clock::now() < deadline) {
    const std::uint32_t head = std::atomic_ref<std::uint32_t>(*sq_head).load(std::memory_order_acquire);
    std::uint32_t tail = std::atomic_ref<std::uint32_t>(*sq_tail).load(std::memory_order_relaxed);
    while (tail - head < g.sq_entries) {
      abi::GuestSqe sqe = raw(abi::kOpReadFixed, kScratch, 0);
      std::memcpy(host(g.sqes + (tail & (g.sq_entries - 1)) * abi::kSqeBytes), &sqe, sizeof(sqe));
      ++tail;
      ++offered;
    }
    std::atomic_ref<std::uint32_t>(*sq_tail).store(tail, std::memory_order_release);
    // Like any guest: ring the doorbell if the mediator sleeps.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if ((std::atomic_ref<std::uint32_t>(*field(g.sq_flags)).load(std::memory_order_relaxed) &
         abi::kSqFlagNeedWakeup) != 0) {
      const std::uint64_t one = 1;
      ASSERT_EQ(::write(device_->kick_fd(), &one, 8), 8);
    }
    std::this_thread::yield();
  }
  ASSERT_TRUE(eventually([&] { return mediated_->counters().completed == g.cq_entries; }))
      << "consumed " << mediated_->counters().consumed << ", completed " << mediated_->counters().completed
      << ", in flight " << mediated_->counters().in_flight;
  const MediatorCounters c = mediated_->counters();
  EXPECT_GT(offered, std::uint64_t{g.cq_entries});
  EXPECT_EQ(c.consumed, g.cq_entries) << "exactly as many as the guest CQ can hold";
  EXPECT_EQ(c.in_flight, 0u);
  EXPECT_EQ(c.broken, BrokenReason::None);
  // Waiting for CQ room, the mediator looks once a millisecond instead of spinning.
  const auto before = cpu_time();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_LT(cpu_time() - before, std::chrono::milliseconds(50));
  // Once the guest reaps, the work resumes.
  guest::Completion done[256];
  std::uint32_t reaped = 0;
  while (reaped < g.cq_entries) reaped += driver_.reap(done, 256);
  ASSERT_TRUE(eventually([&] { return mediated_->counters().consumed > g.cq_entries; }));
}

TEST_F(MediatedDeviceTest, TheKernelOnlyEverReceivesValidatedValuesWhileTheGuestFlipsFields) {
  // One thread plays the guest (publishes SQEs and reaps), another keeps rewriting the SQE
  // slots: opcode, addr, len, fd and off flip between a valid read and hostile values. Whatever
  // the mediator copies, what reaches the kernel must pass every rule.
  std::mutex seen_mutex;
  std::vector<Sqe> seen;
  test::DeviceSetup setup;
  setup.mediated.mediator.on_kernel_submit = [&](const Sqe& s) {
    std::lock_guard lock(seen_mutex);
    seen.push_back(s);
  };
  ASSERT_NO_FATAL_FAILURE(start_mediated(setup));
  auto canary = MmapRegion::map_anonymous(page_size());
  ASSERT_TRUE(canary);
  std::memset(canary->data(), 0xc5, canary->size());
  const abi::RingGeometry& g = driver_.header().ring;
  std::atomic<bool> stop{false};
  std::thread flipper([&] {
    std::uint64_t n = 0;
    while (!stop.load(std::memory_order_relaxed)) {
      for (std::uint32_t slot = 0; slot < g.sq_entries; ++slot) {
        auto* sqe = reinterpret_cast<abi::GuestSqe*>(host(g.sqes + slot * abi::kSqeBytes));  // SAFETY: in the SQE array
        const bool hostile = (++n & 1) != 0;
        std::atomic_ref<std::uint8_t>(sqe->opcode).store(hostile ? abi::kOpWriteFixed : abi::kOpReadFixed,
                                                         std::memory_order_relaxed);
        std::atomic_ref<std::uint64_t>(sqe->addr).store(hostile ? address_of(canary->data()) : kScratch,
                                                        std::memory_order_relaxed);
        std::atomic_ref<std::uint32_t>(sqe->len).store(hostile ? 1u << 30 : 4096u, std::memory_order_relaxed);
        std::atomic_ref<std::int32_t>(sqe->fd).store(hostile ? 5 : 0, std::memory_order_relaxed);
        std::atomic_ref<std::uint64_t>(sqe->off).store(hostile ? kDisk * 4 : 0, std::memory_order_relaxed);
      }
    }
  });
  std::uint64_t completions = 0;
  guest::Completion done[256];
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(300);
  for (std::uint64_t i = 0; std::chrono::steady_clock::now() < deadline; ++i) {
    while (driver_.queue({guest::Op::Read, 0, 0, kScratch, 4096, i}) == guest::RequestStatus::Ok) {
    }
    driver_.submit();
    completions += driver_.reap_wait(done, 256);
  }
  while (driver_.in_flight() != 0) completions += driver_.reap_wait(done, 256);
  stop.store(true);
  flipper.join();

  const MediatorCounters c = mediated_->counters();
  EXPECT_EQ(c.consumed, c.submitted + c.refused_total());
  EXPECT_GT(c.submitted, 0u);
  EXPECT_GT(c.refused_total(), 0u) << "the flipper never won a race: the test did not test anything";
  std::printf("flipped SQEs: %llu consumed, %llu submitted, %llu refused\n", static_cast<unsigned long long>(c.consumed),
              static_cast<unsigned long long>(c.submitted), static_cast<unsigned long long>(c.refused_total()));
  std::lock_guard lock(seen_mutex);
  EXPECT_EQ(seen.size(), c.submitted);
  const std::uintptr_t ram = address_of(memory_->regions()[0].host);
  for (const Sqe& s : seen) {
    ASSERT_TRUE(s.opcode == SqeOpcode::ReadFixed || s.opcode == SqeOpcode::WriteFixed);
    ASSERT_EQ(s.flags, abi::kSqeFixedFile);
    ASSERT_EQ(s.fd, 0);
    ASSERT_GE(s.addr, ram);
    ASSERT_LE(s.addr + s.len, ram + test::kFixtureRam);
    ASSERT_LE(s.off + s.len, kDisk);
    ASSERT_GT(s.len, 0u);
    ASSERT_LE(s.len, kDeviceMaxTransfer);
  }
  for (std::size_t i = 0; i < canary->size(); ++i) ASSERT_EQ(canary->bytes()[i], std::byte{0xc5});
  EXPECT_EQ(test::file_size(image_), kDisk);
}

TEST_F(MediatedDeviceTest, TwoMediatorsProgressWhileOneGuestFloods) {
  // Guest A keeps its SQ full of refused SQEs and reaps as fast as it can; guest B does real
  // reads on its own device. B must get through, and A's mediator keeps refusing.
  ASSERT_NO_FATAL_FAILURE(start_mediated());
  test::TestDevice other;
  test::DeviceSetup setup;
  setup.mode = abi::Mode::Mediated;
  ASSERT_NO_FATAL_FAILURE(other.start(setup));
  std::atomic<bool> stop{false};
  std::thread flooder([&] {
    guest::Completion done[256];
    while (!stop.load(std::memory_order_relaxed)) {
      while (other.driver_.queue_raw(raw(abi::kOpNop, 0, 0)) == guest::RequestStatus::Ok) {
      }
      other.driver_.submit();
      other.driver_.reap(done, 256);
    }
  });
  const auto refused_by_a = [&] { return other.mediated_->counters().refused[static_cast<std::size_t>(RefusalRule::Opcode)]; };
  ASSERT_TRUE(eventually([&] { return refused_by_a() >= 1000; })) << "guest A never got its flood going";
  const std::uint64_t refused_before = refused_by_a();
  guest::Completion done[256];
  std::uint64_t reads = 0;
  const auto start = std::chrono::steady_clock::now();
  while (reads < 20'000 && std::chrono::steady_clock::now() - start < std::chrono::seconds(30)) {
    while (driver_.queue({guest::Op::Read, 0, 0, kScratch, 4096, reads}) == guest::RequestStatus::Ok) {
    }
    driver_.submit();
    const std::uint32_t n = driver_.reap_wait(done, 256);
    for (std::uint32_t i = 0; i < n; ++i) EXPECT_EQ(done[i].result, 4096);
    reads += n;
  }
  const std::uint64_t refused_during = refused_by_a() - refused_before;
  stop.store(true);
  flooder.join();
  EXPECT_GE(reads, 20'000u);
  EXPECT_GT(refused_during, 0u) << "guest A's flood stopped while B ran: nothing was tested";
  EXPECT_EQ(other.mediated_->counters().submitted, 0u);
  EXPECT_EQ(mediated_->counters().refused_total(), 0u);
}

TEST_F(MediatedDeviceTest, RejectsAQueueDepthThatIsNotAPowerOfTwo) {
  test::DeviceSetup setup;
  setup.mediated.queue_depth = 48;
  setup.mode = abi::Mode::Mediated;
  auto disk = Disk::open(test::make_image(dir_, "d.img", 1 << 20), {});
  ASSERT_TRUE(disk) << disk.error().message;
  auto memory = GuestMemoryBuilder::create(setup.regions, MemoryBacking::Anonymous);
  ASSERT_TRUE(memory);
  std::vector<Disk> disks;
  disks.push_back(std::move(*disk));
  auto device = MediatedDevice::create(*memory, std::move(disks), setup.mediated);
  ASSERT_FALSE(device);
  EXPECT_EQ(device.error().code, DeviceErrc::InvalidConfig);
  EXPECT_NE(device.error().message.find("power of two"), std::string::npos) << device.error().message;
}

}  // namespace
}  // namespace rf
