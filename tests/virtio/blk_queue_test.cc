#include "virtio/blk_queue.h"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <poll.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "device/guest_device.h"
#include "support/dirty_bits.h"
#include "support/kernel_caps.h"
#include "support/test_disk.h"
#include "virtio_fixture.h"

namespace rf::virtio {
namespace {

using test::kHole;
using test::TestVirtqueue;
using namespace std::chrono_literals;

constexpr std::uint16_t kSize = 16;
constexpr std::uint64_t kDesc = 0x1000, kAvail = 0x2000, kUsed = 0x3000;
constexpr std::uint64_t kHeaders = 0x10000, kStatus = 0x20000, kData = 0x40000;  // per request i: +i*16, +i, +i*4096
constexpr std::uint64_t kDiskBytes = 1 << 20;

class BlkQueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RF_REQUIRE(test::restrictions_feature());
    RF_REQUIRE(test::loop_device_feature());
    memory_ = test::make_two_region_memory(MemoryBacking::Memfd);
    vq_.emplace(test::view_of(*memory_), kDesc, kAvail, kUsed, kSize);
    image_ = test::make_image(dir_, "disk.img", kDiskBytes);
    ASSERT_FALSE(image_.empty());
  }
  // `zeroing`: DISCARD and WRITE_ZEROES negotiated as the back-end offers them for this disk.
  void start(BlkQueueConfig config = {}, bool read_only = false, bool zeroing = false,
             const char* policy_name = "blk-virtio") {
    DiskOptions options;
    options.read_only = read_only;
    auto disk = Disk::open(image_, options);
    ASSERT_TRUE(disk) << disk.error().message;
    if (zeroing) {
      const bool punch = disk->zeroing().punch_hole;
      config.zeroing = BlkZeroing{punch, true, punch};
    }
    zeroing_ = config.zeroing;
    kick_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    call_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    config.addresses = {GuestAddress{kDesc}, GuestAddress{kAvail}, GuestAddress{kUsed}, kSize};
    config.indirect = true;
    auto policy = device_restrictions(std::nullopt, policy_name);
    ASSERT_TRUE(policy);
    config.restrictions = *policy;
    config.serial = "test";
    auto q = BlkQueue::create(memory_, std::move(*disk), UniqueFd(::dup(kick_.get())), UniqueFd(::dup(call_.get())), config);
    ASSERT_TRUE(q) << q.error().message;
    queue_ = std::move(*q);
    ASSERT_TRUE(queue_->start());
  }
  // Request i: header, one 4 KiB data buffer, status; returns its head (3 descriptors each).
  std::uint16_t request(unsigned i, std::uint32_t type, std::uint64_t sector, std::uint32_t bytes = 4096) {
    BlkRequestHeader h{type, 0, sector};
    std::memcpy(vq_->view().at(kHeaders + 16 * i, 16), &h, 16);
    *vq_->view().at(kStatus + i) = std::byte{0xff};
    const auto first = static_cast<std::uint16_t>((3 * i) % kSize);
    if (type == kBlkFlush) {
      const TestVirtqueue::Part parts[] = {{kHeaders + 16 * i, 16, false}, {kStatus + i, 1, true}};
      return vq_->chain(first, parts);
    }
    const TestVirtqueue::Part parts[] = {
        {kHeaders + 16 * i, 16, false}, {kData + 4096 * i, bytes, type == kBlkIn}, {kStatus + i, 1, true}};
    return vq_->chain(first, parts);
  }
  std::uint8_t status(unsigned i) { return static_cast<std::uint8_t>(*vq_->view().at(kStatus + i)); }
  void kick() { ASSERT_EQ(::eventfd_write(kick_.get(), 1), 0); }
  // Waits for the next used entry.
  std::optional<UsedElement> wait_used(std::chrono::milliseconds timeout = 5s) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
      if (auto e = vq_->pop_used()) return e;
      std::this_thread::sleep_for(1ms);
    }
    return std::nullopt;
  }
  BrokenReason wait_broken() {
    const auto end = std::chrono::steady_clock::now() + 5s;
    while (std::chrono::steady_clock::now() < end && queue_->counters().broken == BrokenReason::None) std::this_thread::sleep_for(1ms);
    return queue_->counters().broken;
  }
  std::uint64_t calls() {
    eventfd_t n = 0;
    return ::eventfd_read(call_.get(), &n) == 0 ? n : 0;
  }

  TempDir dir_{"rf-virtio"};
  std::string image_;
  GuestMemoryMap memory_;
  std::optional<TestVirtqueue> vq_;
  UniqueFd kick_, call_;
  std::unique_ptr<BlkQueue> queue_;
  BlkZeroing zeroing_;  // as started
};

TEST_F(BlkQueueTest, WritesThenReadsBackThroughThePrivateRing) {
  ASSERT_NO_FATAL_FAILURE(start());
  std::memset(vq_->view().at(kData, 4096), 0xab, 4096);
  vq_->publish(request(0, kBlkOut, 8));
  kick();
  auto used = wait_used();
  ASSERT_TRUE(used);
  EXPECT_EQ(used->id, 0u);
  EXPECT_EQ(used->len, 1u);
  EXPECT_EQ(status(0), kBlkStatusOk);
  vq_->publish(request(1, kBlkIn, 8));
  kick();
  used = wait_used();
  ASSERT_TRUE(used);
  EXPECT_EQ(used->id, 3u);
  EXPECT_EQ(used->len, 4097u);
  EXPECT_EQ(status(1), kBlkStatusOk);
  EXPECT_EQ(std::memcmp(vq_->view().at(kData + 4096, 4096), vq_->view().at(kData, 4096), 4096), 0);
  vq_->publish(request(2, kBlkFlush, 0));
  kick();
  ASSERT_TRUE(wait_used());
  EXPECT_EQ(status(2), kBlkStatusOk);
  // The disk itself holds the bytes, at sector 8.
  const auto report = queue_->stop(1s);
  EXPECT_TRUE(report.released);
  EXPECT_EQ(report.next_avail, 3);
  char byte = 0;
  const int fd = ::open(image_.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(::pread(fd, &byte, 1, 8 * 512 + 4095), 1);
  ::close(fd);
  EXPECT_EQ(static_cast<unsigned char>(byte), 0xab);
  const auto c = queue_->counters();
  EXPECT_EQ(c.requests, 3u);
  EXPECT_EQ(c.completed, 3u);
  EXPECT_EQ(c.in_flight, 0u);
}

TEST_F(BlkQueueTest, RefusedRequestsCompleteWithIoErrAndNeverReachTheKernel) {
  ASSERT_NO_FATAL_FAILURE(start());
  vq_->publish(request(0, kBlkOut, kDiskBytes / 512));  // past the end
  vq_->publish(request(1, kBlkIn, 0, 100));               // unaligned length
  vq_->publish(request(2, 11, 0));                        // DISCARD: not offered
  kick();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(wait_used()) << i;
  EXPECT_EQ(status(0), kBlkStatusIoErr);
  EXPECT_EQ(status(1), kBlkStatusIoErr);
  EXPECT_EQ(status(2), kBlkStatusUnsupported);
  const auto c = queue_->counters();
  EXPECT_EQ(c.kernel_ios, 0u);
  EXPECT_EQ(c.refused[static_cast<std::size_t>(BlkRefusal::Rule)], 2u);
  EXPECT_EQ(c.refused[static_cast<std::size_t>(BlkRefusal::Unsupported)], 1u);
}

// DISCARD and WRITE_ZEROES on a loop-backed image: each zeroes exactly its segments' sectors, a
// refused one changes nothing, and a policy without FALLOCATE stops them before the kernel.
class BlkQueueZeroingTest : public BlkQueueTest {
 protected:
  void SetUp() override {
    BlkQueueTest::SetUp();
    if (HasFatalFailure() || IsSkipped()) return;
    expected_.assign(kDiskBytes, static_cast<char>(0xab));
    const int fd = ::open(image_.c_str(), O_WRONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::pwrite(fd, expected_.data(), expected_.size(), 0), static_cast<ssize_t>(kDiskBytes));
    ::close(fd);
  }
  // Request i: header, its segments (16 bytes each, at kData + 4096 * i), status.
  std::uint16_t zeroing(unsigned i, std::uint32_t type, const std::vector<BlkZeroingSegment>& segments) {
    BlkRequestHeader h{type, 0, 0};
    std::memcpy(vq_->view().at(kHeaders + 16 * i, 16), &h, 16);
    std::memcpy(vq_->view().at(kData + 4096 * i, 16 * segments.size()), segments.data(), 16 * segments.size());
    *vq_->view().at(kStatus + i) = std::byte{0xff};
    const TestVirtqueue::Part parts[] = {{kHeaders + 16 * i, 16, false},
                                         {kData + 4096 * i, static_cast<std::uint32_t>(16 * segments.size()), false},
                                         {kStatus + i, 1, true}};
    return vq_->chain(static_cast<std::uint16_t>((3 * i) % kSize), parts);
  }
  void zeroed(const BlkZeroingSegment& s) { std::memset(expected_.data() + s.sector * 512, 0, s.num_sectors * 512); }
  std::string on_disk() {
    std::string bytes(kDiskBytes, '\0');
    const int fd = ::open(image_.c_str(), O_RDONLY | O_CLOEXEC);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(::pread(fd, bytes.data(), bytes.size(), 0), static_cast<ssize_t>(kDiskBytes));
    ::close(fd);
    return bytes;
  }

  std::string expected_;  // the 0xab pattern written at set-up, with what should be zeroed
};

TEST_F(BlkQueueZeroingTest, EachSegmentIsZeroedAndNothingElse) {
  ASSERT_NO_FATAL_FAILURE(start({}, false, true));
  const BlkZeroingSegment a{8, 8, 0}, b{33, 15, kBlkZeroingFlagUnmap}, c{64, 8, 0}, d{200, 56, 0},
      e{kDiskBytes / 512 - 1, 1, 0};
  vq_->publish(zeroing(0, kBlkWriteZeroes, {a}));
  vq_->publish(zeroing(1, kBlkWriteZeroes, {b}));
  unsigned requests = 2;
  if (zeroing_.discard) {
    vq_->publish(zeroing(2, kBlkDiscard, {c, d, e}));
    ++requests;
  }
  kick();
  for (unsigned i = 0; i < requests; ++i) ASSERT_TRUE(wait_used()) << i;
  for (unsigned i = 0; i < requests; ++i) EXPECT_EQ(status(i), kBlkStatusOk) << i;
  EXPECT_EQ(queue_->counters().kernel_ios, requests == 3 ? 5u : 2u);
  queue_->stop(1s);
  for (const auto& s : {a, b}) zeroed(s);
  if (requests == 3) {
    for (const auto& s : {c, d, e}) zeroed(s);
  }
  EXPECT_TRUE(on_disk() == expected_) << "the disk differs from the pattern with exactly those sectors zeroed";
  if (requests == 2) GTEST_SKIP() << "the loop device cannot zero by itself (write_zeroes_max_bytes 0): DISCARD not tried";
}

TEST_F(BlkQueueZeroingTest, HostileSegmentsChangeNothing) {
  ASSERT_NO_FATAL_FAILURE(start({}, false, true));
  // Past the end, wrapping, unmap on a DISCARD-like flag, an unknown flag; each after a good segment.
  vq_->publish(zeroing(0, kBlkWriteZeroes, {{0, 8, 0}, {kDiskBytes / 512, 8, 0}}));
  vq_->publish(zeroing(1, kBlkWriteZeroes, {{0, 8, 0}, {~std::uint64_t{0} >> 9, 0xffffffffu, 0}}));
  vq_->publish(zeroing(2, kBlkWriteZeroes, {{0, 8, 0}, {16, 8, 4}}));
  vq_->publish(zeroing(3, kBlkWriteZeroes, {{0, 8, 0}, {16, 0, 0}}));
  kick();
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(wait_used()) << i;
  EXPECT_EQ(status(0), kBlkStatusIoErr);
  EXPECT_EQ(status(1), kBlkStatusIoErr);
  EXPECT_EQ(status(2), kBlkStatusUnsupported);
  EXPECT_EQ(status(3), kBlkStatusIoErr);
  EXPECT_EQ(queue_->counters().kernel_ios, 0u);
  queue_->stop(1s);
  EXPECT_TRUE(on_disk() == expected_) << "a refused request changed the disk";
}

TEST_F(BlkQueueZeroingTest, APolicyWithoutFallocateStopsThemBeforeTheKernel) {
  ASSERT_NO_FATAL_FAILURE(start({}, false, true, "blk-mediated"));
  vq_->publish(zeroing(0, kBlkWriteZeroes, {{0, 8, 0}}));
  kick();
  ASSERT_TRUE(wait_used());
  EXPECT_EQ(status(0), kBlkStatusIoErr);
  const auto c = queue_->counters();
  EXPECT_EQ(c.kernel_ios, 0u);
  EXPECT_EQ(c.refused[static_cast<std::size_t>(BlkRefusal::Rule)], 1u);
  queue_->stop(1s);
  EXPECT_TRUE(on_disk() == expected_);
}

TEST_F(BlkQueueTest, AReadOnlyDiskRefusesWrites) {
  ASSERT_NO_FATAL_FAILURE(start({}, true));
  vq_->publish(request(0, kBlkOut, 0));
  kick();
  ASSERT_TRUE(wait_used());
  EXPECT_EQ(status(0), kBlkStatusIoErr);
  EXPECT_EQ(queue_->counters().kernel_ios, 0u);
}

TEST_F(BlkQueueTest, AnAvailIndexJumpBreaksTheQueueWithoutTouchingTheDisk) {
  ASSERT_NO_FATAL_FAILURE(start());
  vq_->store_avail_idx(kSize + 1);
  kick();
  EXPECT_EQ(wait_broken(), BrokenReason::Virtqueue);
  EXPECT_NE(queue_->counters().broken_detail.find("avail index jumped"), std::string::npos) << queue_->counters().broken_detail;
  EXPECT_EQ(queue_->counters().requests, 0u);
  EXPECT_FALSE(vq_->pop_used());
}

TEST_F(BlkQueueTest, AChainLoopBreaksTheQueue) {
  ASSERT_NO_FATAL_FAILURE(start());
  vq_->set_desc(0, kHeaders, 16, kDescNext, 1);
  vq_->set_desc(1, kData, 512, kDescNext, 0);
  vq_->publish(0);
  kick();
  EXPECT_EQ(wait_broken(), BrokenReason::Virtqueue);
  EXPECT_NE(queue_->counters().broken_detail.find("loop"), std::string::npos) << queue_->counters().broken_detail;
}

TEST_F(BlkQueueTest, ADisabledQueueTakesNothingUntilEnabled) {
  ASSERT_NO_FATAL_FAILURE(start());
  queue_->set_enabled(false);
  vq_->publish(request(0, kBlkFlush, 0));
  kick();
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(queue_->counters().requests, 0u);
  queue_->set_enabled(true);
  ASSERT_TRUE(wait_used());
  EXPECT_EQ(status(0), kBlkStatusOk);
}

TEST_F(BlkQueueTest, EventIdxSuppressesNotificationsTheGuestDidNotAskFor) {
  BlkQueueConfig config;
  config.event_idx = true;
  ASSERT_NO_FATAL_FAILURE(start(config));
  // The guest asks to hear only when used index 3 is passed (used_event = 2).
  vq_->set_used_event(2);
  for (unsigned i = 0; i < 3; ++i) {
    vq_->publish(request(i, kBlkFlush, 0));
    kick();
    ASSERT_TRUE(wait_used()) << i;
  }
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(queue_->counters().notifications, 1u);
  EXPECT_EQ(calls(), 1u);
  // And the device asked for a kick at its own position.
  EXPECT_EQ(vq_->avail_event(), 3);
}

// The late look for interrupts (vmm-glue/device/late_look.h): under single-threaded TCG the
// guest's store of used_event can become visible after its own last look at the used index, so
// the queue, which read the old used_event, did not signal, and the guest sleeps. Played here by
// moving used_event back onto an entry already published, right after it appeared: the queue
// signals a millisecond into its sleep. An attempt counts when the test wrote within 200 µs.
TEST_F(BlkQueueTest, AnInterruptAskedForJustAfterThePublishIsSentLate) {
  BlkQueueConfig config;
  config.event_idx = true;
  ASSERT_NO_FATAL_FAILURE(start(config));
  int conclusive = 0;
  for (unsigned i = 0; i < 20 && conclusive < 5; ++i) {
    vq_->set_used_event(static_cast<std::uint16_t>(i + 1000));  // "do not interrupt me for now"
    while (calls() != 0) {
    }
    vq_->publish(request(i, kBlkFlush, 0));
    kick();
    std::optional<UsedElement> used;
    while (!(used = vq_->pop_used())) {
    }
    const auto seen = std::chrono::steady_clock::now();
    vq_->set_used_event(static_cast<std::uint16_t>(i));  // interrupt me for entry i, published already
    const auto wrote = std::chrono::steady_clock::now() - seen;
    std::uint64_t signalled = 0;
    for (int wait = 0; wait < 100 && signalled == 0; ++wait) {
      std::this_thread::sleep_for(1ms);
      signalled = calls();
    }
    if (wrote > 200us) continue;
    ++conclusive;
    EXPECT_EQ(signalled, 1u) << "request " << i << ": the interrupt asked for " << std::chrono::duration<double, std::micro>(wrote).count()
                             << " µs after the used entry was never sent";
  }
  EXPECT_GE(conclusive, 5) << "the test was too slow to write used_event within 200 µs";
}

// ... and it is one look: a guest that asks long after must look at the used index itself.
TEST_F(BlkQueueTest, AnInterruptAskedForLongAfterThePublishIsNotSent) {
  BlkQueueConfig config;
  config.event_idx = true;
  ASSERT_NO_FATAL_FAILURE(start(config));
  vq_->set_used_event(1000);
  vq_->publish(request(0, kBlkFlush, 0));
  kick();
  ASSERT_TRUE(wait_used());
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(calls(), 0u);
  vq_->set_used_event(0);
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(calls(), 0u) << "the sleeping queue watched used_event";
}

TEST_F(BlkQueueTest, NoInterruptSuppressesNotificationsWithoutEventIdx) {
  ASSERT_NO_FATAL_FAILURE(start());
  vq_->set_avail_flags(kAvailNoInterrupt);
  vq_->publish(request(0, kBlkFlush, 0));
  kick();
  ASSERT_TRUE(wait_used());
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(calls(), 0u);
  vq_->set_avail_flags(0);
  vq_->publish(request(1, kBlkFlush, 0));
  kick();
  ASSERT_TRUE(wait_used());
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(calls(), 1u);
}

TEST_F(BlkQueueTest, TheSameHeadManyTimesOverIsBoundedByTheSlots) {
  // A guest that publishes one head again and again, faster than it is served: every publish
  // is a request of its own; none is lost, none is answered twice.
  ASSERT_NO_FATAL_FAILURE(start());
  const std::uint16_t head = request(0, kBlkIn, 0);
  for (unsigned i = 0; i < kSize; ++i) vq_->publish(head);
  kick();
  for (unsigned i = 0; i < kSize; ++i) {
    auto used = wait_used();
    ASSERT_TRUE(used) << i;
    EXPECT_EQ(used->id, head);
  }
  EXPECT_FALSE(wait_used(50ms));
  EXPECT_EQ(queue_->counters().completed, kSize);
}

TEST_F(BlkQueueTest, StopAnswersWhereTheNextRequestStarts) {
  BlkQueueConfig config;
  config.base = 0xfffe;  // the positions wrap at 2^16
  vq_.emplace(test::view_of(*memory_), kDesc, kAvail, kUsed, kSize);
  ASSERT_NO_FATAL_FAILURE(start(config));
  vq_->store_avail_idx(0xfffe);
  // The test driver counts from 0; move it to the device's base by publishing through the wrap.
  for (unsigned i = 0; i < 4; ++i) {
    const std::uint16_t head = request(i, kBlkFlush, 0);
    *vq_->view().as<std::uint16_t>(kAvail + 4 + 2 * ((0xfffe + i) % kSize)) = head;
    vq_->store_avail_idx(static_cast<std::uint16_t>(0xfffe + i + 1));
  }
  kick();
  const auto end = std::chrono::steady_clock::now() + 5s;
  while (queue_->counters().completed < 4 && std::chrono::steady_clock::now() < end) std::this_thread::sleep_for(1ms);
  EXPECT_EQ(queue_->counters().completed, 4u);
  EXPECT_EQ(queue_->stop(1s).next_avail, 2);
  EXPECT_EQ(vq_->used_idx(), 2) << "the used index continues from the base too";
}

}  // namespace
}  // namespace rf::virtio

namespace rf::virtio {
namespace {

// The inflight record (inflight_split.h) through a real queue: a queue keeps its record clean,
// and a queue started over the record a dead back-end left resubmits exactly what that one had
// taken and not answered, then goes on with the guest's new requests.
class BlkQueueInflightTest : public BlkQueueTest {
 protected:
  void SetUp() override {
    BlkQueueTest::SetUp();
    auto map = MmapRegion::map_anonymous(inflight_queue_bytes(kSize));
    ASSERT_TRUE(map);
    region_ = std::make_shared<MmapRegion>(std::move(*map));
  }
  BlkQueueConfig with_record() {
    BlkQueueConfig config;
    config.inflight = BlkQueueConfig::InflightPart{region_, 0, kSize};
    return config;
  }
  std::uint8_t disk_byte(std::uint64_t offset) {
    unsigned char byte = 0;
    const int fd = ::open(image_.c_str(), O_RDONLY | O_CLOEXEC);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(::pread(fd, &byte, 1, static_cast<off_t>(offset)), 1);
    ::close(fd);
    return byte;
  }
  std::shared_ptr<MmapRegion> region_;
};

TEST_F(BlkQueueInflightTest, ARunningQueueLeavesNothingInFlightInItsRecord) {
  ASSERT_NO_FATAL_FAILURE(start(with_record()));
  for (unsigned i = 0; i < 4; ++i) vq_->publish(request(i, kBlkOut, 8 * i));
  kick();
  for (unsigned i = 0; i < 4; ++i) ASSERT_TRUE(wait_used());
  queue_->stop(1s);
  const InflightRecovery r = InflightSplit(region_->bytes(), kSize).recover(vq_->used_idx(), kSize);
  EXPECT_FALSE(r.fresh);
  EXPECT_TRUE(r.resubmit.empty());
  EXPECT_EQ(r.next_avail, 4);
}

TEST_F(BlkQueueInflightTest, AQueueStartedOverADeadBackEndsRecordResubmitsWhatItHadInFlight) {
  // The guest posts four writes of distinct bytes.
  std::uint16_t heads[5];
  for (unsigned i = 0; i < 4; ++i) {
    std::memset(vq_->view().at(kData + 4096 * i, 4096), 0x10 + static_cast<int>(i), 4096);
    heads[i] = request(i, kBlkOut, 8 * i);
    vq_->publish(heads[i]);
  }
  {
    // A back-end took all four, answered the second (without writing it, so that a resubmission
    // of it would show on the disk), and died.
    InflightSplit dead(region_->bytes(), kSize);
    dead.recover(0, kSize);
    for (unsigned i = 0; i < 4; ++i) dead.taken(heads[i]);
    *vq_->view().at(kStatus + 1) = std::byte{kBlkStatusOk};
    vq_->device_wrote_used(0, heads[1], 1);
    dead.used(heads[1]);
    vq_->device_published_used(1);
    dead.published(1);
  }
  ASSERT_EQ(vq_->pop_used()->id, heads[1]);  // the guest saw that answer

  ASSERT_NO_FATAL_FAILURE(start(with_record()));
  EXPECT_EQ(queue_->recovery().resubmit, (std::vector<std::uint16_t>{heads[0], heads[2], heads[3]}));
  for (const unsigned i : {0u, 2u, 3u}) {
    auto used = wait_used();
    ASSERT_TRUE(used);
    EXPECT_EQ(used->id, heads[i]);
    EXPECT_EQ(status(i), kBlkStatusOk);
  }
  // A new request continues at avail position 4, and nothing is answered twice.
  std::memset(vq_->view().at(kData + 4096 * 4, 4096), 0x14, 4096);
  heads[4] = request(4, kBlkOut, 8 * 4);
  vq_->publish(heads[4]);
  kick();
  auto used = wait_used();
  ASSERT_TRUE(used);
  EXPECT_EQ(used->id, heads[4]);
  EXPECT_FALSE(wait_used(100ms));
  const BlkQueueCounters c = queue_->counters();
  EXPECT_EQ(c.resubmitted, 3u);
  EXPECT_EQ(c.requests, 4u);
  EXPECT_EQ(c.completed, 4u);
  queue_->stop(1s);
  EXPECT_EQ(disk_byte(0 * 4096), 0x10);
  EXPECT_EQ(disk_byte(1 * 4096), 0x00);  // answered by the dead back-end: not resubmitted
  EXPECT_EQ(disk_byte(2 * 4096), 0x12);
  EXPECT_EQ(disk_byte(3 * 4096), 0x13);
  EXPECT_EQ(disk_byte(4 * 4096), 0x14);
}

TEST_F(BlkQueueInflightTest, ADeathBetweenPublishingAndClearingResubmitsNothingAnswered) {
  std::uint16_t heads[3];
  for (unsigned i = 0; i < 3; ++i) {
    heads[i] = request(i, kBlkOut, 8 * i);
    vq_->publish(heads[i]);
  }
  {
    InflightSplit dead(region_->bytes(), kSize);
    dead.recover(0, kSize);
    for (unsigned i = 0; i < 2; ++i) dead.taken(heads[i]);
    for (unsigned i = 0; i < 2; ++i) {
      vq_->device_wrote_used(static_cast<std::uint16_t>(i), heads[i], 1);
      dead.used(heads[i]);
    }
    vq_->device_published_used(2);  // and it died before clearing the two flags
  }
  ASSERT_TRUE(vq_->pop_used());
  ASSERT_TRUE(vq_->pop_used());
  ASSERT_NO_FATAL_FAILURE(start(with_record()));
  EXPECT_TRUE(queue_->recovery().resubmit.empty());
  EXPECT_EQ(queue_->recovery().batch_cleared, 2u);
  kick();  // the third request was never taken: it is taken now, at avail position 2
  auto used = wait_used();
  ASSERT_TRUE(used);
  EXPECT_EQ(used->id, heads[2]);
  EXPECT_FALSE(wait_used(100ms));
  EXPECT_EQ(queue_->counters().requests, 1u);
}

}  // namespace
}  // namespace rf::virtio

namespace rf::virtio {
namespace {

// Live migration: every guest page the queue writes (a read's data, a status byte, the used ring)
// is in the dirty log before the guest can see the request answered, and nothing it only reads.
class BlkQueueDirtyLogTest : public BlkQueueTest {
 protected:
  struct Log {
    std::shared_ptr<DirtyLog> log;
    std::byte* bits = nullptr;
    bool has(std::uint64_t gpa) const { return test::page_marked({bits, 4096}, gpa); }
    bool empty() const { return test::no_page_marked({bits, 4096}); }
    void clear() const { std::memset(bits, 0, 4096); }
  };
  static Log make_log() {
    auto map = MmapRegion::map_anonymous(4096);
    if (!map) throw std::runtime_error("mmap");
    Log l;
    l.bits = map->bytes();
    l.log = std::make_shared<DirtyLog>(std::move(*map));
    return l;
  }
  void run_request(unsigned i, std::uint32_t type) {
    vq_->publish(request(i, type, 8 * i));
    kick();
    ASSERT_TRUE(wait_used());
  }
};

TEST_F(BlkQueueDirtyLogTest, EveryPageTheQueueWritesIsMarkedAndNothingItOnlyReads) {
  const Log first = make_log();
  BlkQueueConfig config;
  config.dirty_log = first.log;
  config.used_log = GuestAddress{kUsed};
  ASSERT_NO_FATAL_FAILURE(start(config));
  ASSERT_NO_FATAL_FAILURE(run_request(0, kBlkOut));
  EXPECT_TRUE(first.has(kUsed));
  EXPECT_TRUE(first.has(kStatus));
  EXPECT_FALSE(first.has(kData)) << "a write's data is only read by the device";
  EXPECT_FALSE(first.has(kHeaders));
  EXPECT_FALSE(first.has(kDesc));
  first.clear();
  ASSERT_NO_FATAL_FAILURE(run_request(1, kBlkIn));
  EXPECT_TRUE(first.has(kData + 4096));
  EXPECT_TRUE(first.has(kStatus + 1));
  EXPECT_TRUE(first.has(kUsed));
  EXPECT_EQ(first.log->out_of_range(), 0u);

  // A new log (QEMU resizes it): once set_dirty_log returns, the old one gets nothing more.
  const Log second = make_log();
  ASSERT_TRUE(queue_->set_dirty_log(second.log, GuestAddress{kUsed}));
  first.clear();
  ASSERT_NO_FATAL_FAILURE(run_request(2, kBlkIn));
  EXPECT_TRUE(second.has(kData + 2 * 4096));
  EXPECT_TRUE(first.empty());
  // Logging off: nothing is marked.
  ASSERT_TRUE(queue_->set_dirty_log(nullptr, std::nullopt));
  second.clear();
  ASSERT_NO_FATAL_FAILURE(run_request(3, kBlkIn));
  EXPECT_TRUE(second.empty());
}

TEST_F(BlkQueueDirtyLogTest, WithoutUsedRingLoggingOnlyTheBuffersAreMarked) {
  const Log log = make_log();
  BlkQueueConfig config;
  config.dirty_log = log.log;
  ASSERT_NO_FATAL_FAILURE(start(config));
  ASSERT_NO_FATAL_FAILURE(run_request(0, kBlkIn));
  EXPECT_TRUE(log.has(kData));
  EXPECT_FALSE(log.has(kUsed)) << "VHOST_VRING_F_LOG was not asked for";
}

}  // namespace
}  // namespace rf::virtio
