// The inflight record of one split virtqueue (virtio/inflight_split.h): what a back-end that died
// left behind is read back as exactly the requests it had taken and not answered, in the order
// it took them; a record that lies (written by a hostile front-end, or a used index the guest
// moved) costs no access outside the record and never more heads than the queue has.
#include "virtio/inflight_split.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace rf::virtio {
namespace {

constexpr std::uint16_t kSize = 16;

class InflightSplitTest : public ::testing::Test {
 protected:
  // A guard page's worth of poison around the part catches a write outside it.
  static constexpr std::size_t kGuard = 256;
  InflightSplitTest() : bytes_(inflight_queue_bytes(kSize) + 2 * kGuard, std::byte{0x5a}) {
    std::memset(part(), 0, inflight_queue_bytes(kSize));
  }
  std::byte* part() { return bytes_.data() + kGuard; }
  // SAFETY: the part lies inside bytes_, 16-aligned (vector storage plus kGuard), and holds the
  // header and kSize states (inflight_queue_bytes); tests pass i < kSize.
  InflightQueueHeader& header() { return *reinterpret_cast<InflightQueueHeader*>(part()); }
  InflightDescState& desc(unsigned i) {
    // SAFETY: as above.
    return reinterpret_cast<InflightDescState*>(part() + sizeof(InflightQueueHeader))[i];
  }
  bool guards_intact() const {
    for (std::size_t i = 0; i < kGuard; ++i) {
      if (bytes_[i] != std::byte{0x5a} || bytes_[bytes_.size() - 1 - i] != std::byte{0x5a}) return false;
    }
    return true;
  }
  // The record a back-end kept before it died, set up fresh.
  InflightSplit live() {
    InflightSplit record(part(), kSize);
    EXPECT_TRUE(record.recover(0, kSize).fresh);
    return record;
  }
  std::vector<std::byte> bytes_;
};

TEST_F(InflightSplitTest, AFreshRecordIsSetUpEmpty) {
  InflightSplit record(part(), kSize);
  const InflightRecovery r = record.recover(7, kSize);
  EXPECT_TRUE(r.fresh);
  EXPECT_FALSE(r.unreadable);
  EXPECT_TRUE(r.resubmit.empty());
  EXPECT_EQ(header().version, kInflightVersion);
  EXPECT_EQ(header().desc_num, kSize);
  EXPECT_EQ(header().used_idx, 7);
}

TEST_F(InflightSplitTest, WhatWasTakenAndNotAnsweredIsResubmittedInTheOrderTaken) {
  InflightSplit dead = live();
  for (const int head : {9, 3, 12, 5}) dead.taken(static_cast<std::uint16_t>(head));
  dead.used(3);
  dead.published(1);  // the used ring says 1: head 3 was answered
  InflightSplit next(part(), kSize);
  const InflightRecovery r = next.recover(1, kSize);
  EXPECT_FALSE(r.fresh);
  EXPECT_EQ(r.resubmit, (std::vector<std::uint16_t>{9, 12, 5}));
  EXPECT_EQ(r.used_idx, 1);
  EXPECT_EQ(r.next_avail, 4);  // four heads were taken from the avail ring
  EXPECT_EQ(r.batch_cleared, 0u);
  EXPECT_TRUE(guards_intact());
}

TEST_F(InflightSplitTest, ABatchPublishedButNotClearedIsFoundAnswered) {
  InflightSplit dead = live();
  dead.taken(1);
  dead.taken(2);
  dead.taken(4);
  dead.used(2);
  dead.used(1);
  // The used index reached 2 in guest RAM, and the back-end died before it cleared the flags.
  InflightSplit next(part(), kSize);
  const InflightRecovery r = next.recover(2, kSize);
  EXPECT_EQ(r.batch_cleared, 2u);
  EXPECT_EQ(r.resubmit, (std::vector<std::uint16_t>{4}));
  EXPECT_EQ(r.next_avail, 3);
  EXPECT_EQ(header().used_idx, 2);
}

TEST_F(InflightSplitTest, AnsweredAndPublishedHeadsAreNeverResubmitted) {
  InflightSplit dead = live();
  for (std::uint16_t round = 0; round < 100; ++round) {
    const auto head = static_cast<std::uint16_t>(round % kSize);
    dead.taken(head);
    dead.used(head);
    dead.published(static_cast<std::uint16_t>(round + 1));
  }
  InflightSplit next(part(), kSize);
  const InflightRecovery r = next.recover(100, kSize);
  EXPECT_TRUE(r.resubmit.empty());
  EXPECT_EQ(r.next_avail, 100);
}

TEST_F(InflightSplitTest, TheNextBackEndsCounterContinuesAfterTheDeadOnes) {
  InflightSplit dead = live();
  dead.taken(6);
  InflightSplit next(part(), kSize);
  ASSERT_EQ(next.recover(0, kSize).resubmit, (std::vector<std::uint16_t>{6}));
  next.taken(2);  // a new request, taken after the resubmitted one was
  next.taken(6);  // head 6 resubmitted
  InflightSplit third(part(), kSize);
  EXPECT_EQ(third.recover(0, kSize).resubmit, (std::vector<std::uint16_t>{2, 6}));
}

TEST_F(InflightSplitTest, ARecordOfAnotherVersionOrSizeIsResetNotFollowed) {
  header().version = 9;
  desc(3).inflight = 1;
  InflightSplit record(part(), kSize);
  const InflightRecovery r = record.recover(5, kSize);
  EXPECT_TRUE(r.fresh);
  EXPECT_TRUE(r.unreadable);
  EXPECT_TRUE(r.resubmit.empty());
  EXPECT_EQ(desc(3).inflight, 0);

  header().desc_num = kSize * 2;  // a record for a bigger queue: its states are not ours
  desc(3).inflight = 1;
  EXPECT_TRUE(InflightSplit(part(), kSize).recover(5, kSize).unreadable);
  EXPECT_TRUE(guards_intact());
}

// GUEST-CONTROLLED: the used index; front-end-controlled: every word of the record. Whatever
// they say, recovery stays inside the record, follows no head past the queue, and resubmits at
// most one request per descriptor.
TEST_F(InflightSplitTest, AHostileRecordStaysInsideItsBounds) {
  InflightSplit dead = live();
  for (unsigned i = 0; i < kSize; ++i) {
    desc(i).inflight = static_cast<std::uint8_t>(i % 3);  // 0, 1 and an invalid 2
    desc(i).next = static_cast<std::uint16_t>(i);         // every batch link a cycle on itself
    desc(i).counter = ~std::uint64_t{0} - i;
  }
  header().last_batch_head = 0xffff;  // names no descriptor
  header().used_idx = 3;
  InflightSplit next(part(), kSize);
  const InflightRecovery r = next.recover(60000, kSize);  // the guest moved its used index far ahead
  EXPECT_LE(r.resubmit.size(), kSize);
  for (const std::uint16_t head : r.resubmit) {
    EXPECT_LT(head, kSize);
    EXPECT_EQ(head % 3, 1u);
  }
  EXPECT_EQ(r.ignored, 1u + 5u);  // the bad batch head, and the five states of value 2
  EXPECT_TRUE(guards_intact());
}

TEST_F(InflightSplitTest, HeadsPastASmallerQueueAreForgotten) {
  InflightSplit dead = live();
  for (const int head : {1, 9, 15}) dead.taken(static_cast<std::uint16_t>(head));
  // The queue now started has 8 descriptors, the record 16.
  const InflightRecovery r = InflightSplit(part(), kSize).recover(0, 8);
  EXPECT_EQ(r.resubmit, (std::vector<std::uint16_t>{1}));
  EXPECT_EQ(r.ignored, 2u);
  EXPECT_EQ(desc(9).inflight, 0);
  EXPECT_TRUE(guards_intact());
}

TEST_F(InflightSplitTest, ACyclicBatchListEndsWithinTheQueueSize) {
  InflightSplit dead = live();
  for (std::uint16_t head = 0; head < kSize; ++head) dead.taken(head);
  desc(4).next = 5;
  desc(5).next = 4;  // a two-head cycle
  header().last_batch_head = 4;
  InflightSplit next(part(), kSize);
  const InflightRecovery r = next.recover(40000, kSize);  // a batch far longer than the queue
  EXPECT_EQ(r.batch_cleared, 2u);
  EXPECT_EQ(r.resubmit.size(), kSize - 2u);
  EXPECT_TRUE(guards_intact());
}

}  // namespace
}  // namespace rf::virtio
