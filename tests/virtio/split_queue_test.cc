#include "virtio/split_queue.h"

#include <gtest/gtest.h>

#include "virtio_fixture.h"

namespace rf::virtio {
namespace {

using test::kHighBase;
using test::kHole;
using test::TestVirtqueue;

constexpr std::uint16_t kSize = 8;
constexpr std::uint64_t kDesc = 0x1000, kAvail = 0x2000, kUsed = 0x3000, kTable = 0x4000, kData = 0x10000;

class SplitQueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    memory_ = test::make_two_region_memory();
    vq_.emplace(test::view_of(*memory_), kDesc, kAvail, kUsed, kSize);
  }
  Result<SplitQueue, QueueError> make(bool indirect = true, SplitQueueAddresses a = {GuestAddress{kDesc}, GuestAddress{kAvail},
                                                                                    GuestAddress{kUsed}, kSize}) {
    return SplitQueue::create(*memory_, a, indirect);
  }
  QueueErrc chain_error(std::uint16_t head, bool indirect = true) {
    auto q = make(indirect);
    EXPECT_TRUE(q.has_value());
    std::vector<ChainSegment> out;
    auto r = q->read_chain(head, out);
    EXPECT_FALSE(r.has_value()) << "the chain was accepted";
    return r ? QueueErrc::BadSize : r.error().code;
  }

  GuestMemoryMap memory_;
  std::optional<TestVirtqueue> vq_;
};

TEST_F(SplitQueueTest, ReadsAWellFormedChainInOrder) {
  const TestVirtqueue::Part parts[] = {{kData, 16, false}, {kData + 0x1000, 4096, true}, {kData + 0x2000, 1, true}};
  vq_->chain(2, parts);
  auto q = make();
  ASSERT_TRUE(q.has_value());
  std::vector<ChainSegment> out;
  ASSERT_TRUE(q->read_chain(2, out).has_value());
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].gpa.value(), kData);
  EXPECT_FALSE(out[0].device_writes);
  EXPECT_EQ(out[1].len, 4096u);
  EXPECT_TRUE(out[2].device_writes);
}

TEST_F(SplitQueueTest, CreateRefusesBadSizesAlignmentAndPlacement) {
  auto code = [&](SplitQueueAddresses a) { auto q = make(true, a); return q ? QueueErrc::ReadableAfterWritable : q.error().code; };
  EXPECT_EQ(code({GuestAddress{kDesc}, GuestAddress{kAvail}, GuestAddress{kUsed}, 6}), QueueErrc::BadSize);
  EXPECT_EQ(code({GuestAddress{kDesc}, GuestAddress{kAvail}, GuestAddress{kUsed}, 0}), QueueErrc::BadSize);
  EXPECT_EQ(code({GuestAddress{kDesc}, GuestAddress{kAvail}, GuestAddress{kUsed}, 65536}), QueueErrc::BadSize);
  EXPECT_EQ(code({GuestAddress{kDesc + 8}, GuestAddress{kAvail}, GuestAddress{kUsed}, kSize}), QueueErrc::BadAlignment);
  EXPECT_EQ(code({GuestAddress{kDesc}, GuestAddress{kAvail + 1}, GuestAddress{kUsed}, kSize}), QueueErrc::BadAlignment);
  EXPECT_EQ(code({GuestAddress{kDesc}, GuestAddress{kAvail}, GuestAddress{kUsed + 2}, kSize}), QueueErrc::BadAlignment);
  // In the hole, straddling the end of the first region, past 2^64.
  EXPECT_EQ(code({GuestAddress{kHole}, GuestAddress{kAvail}, GuestAddress{kUsed}, kSize}), QueueErrc::Unmapped);
  EXPECT_EQ(code({GuestAddress{kDesc}, GuestAddress{kHole - 4}, GuestAddress{kUsed}, kSize}), QueueErrc::Unmapped);
  EXPECT_EQ(code({GuestAddress{kDesc}, GuestAddress{kAvail}, GuestAddress{~std::uint64_t{0} - 3}, kSize}), QueueErrc::Unmapped);
}

TEST_F(SplitQueueTest, HeadAndNextMustNameADescriptor) {
  EXPECT_EQ(chain_error(kSize), QueueErrc::HeadOutOfRange);
  EXPECT_EQ(chain_error(0xffff), QueueErrc::HeadOutOfRange);
  vq_->set_desc(0, kData, 16, kDescNext, kSize);
  EXPECT_EQ(chain_error(0), QueueErrc::HeadOutOfRange);
}

TEST_F(SplitQueueTest, ALoopIsCaughtWithinTheQueueSize) {
  vq_->set_desc(0, kData, 16, kDescNext, 1);
  vq_->set_desc(1, kData, 16, kDescNext, 0);
  EXPECT_EQ(chain_error(0), QueueErrc::ChainTooLong);
  vq_->set_desc(3, kData, 16, kDescNext, 3);  // a descriptor that names itself
  EXPECT_EQ(chain_error(3), QueueErrc::ChainTooLong);
}

TEST_F(SplitQueueTest, AChainOfExactlyTheQueueSizeIsAccepted) {
  for (std::uint16_t i = 0; i < kSize; ++i) {
    vq_->set_desc(i, kData, 16, static_cast<std::uint16_t>(i + 1 < kSize ? kDescNext : 0), static_cast<std::uint16_t>(i + 1));
  }
  auto q = make();
  std::vector<ChainSegment> out;
  ASSERT_TRUE(q->read_chain(0, out).has_value());
  EXPECT_EQ(out.size(), kSize);
}

TEST_F(SplitQueueTest, ReadableAfterWritableIsRefused) {
  const TestVirtqueue::Part parts[] = {{kData, 16, false}, {kData, 1, true}, {kData, 16, false}};
  vq_->chain(0, parts);
  EXPECT_EQ(chain_error(0), QueueErrc::ReadableAfterWritable);
}

TEST_F(SplitQueueTest, ZeroLengthDescriptorsAreDropped) {
  const TestVirtqueue::Part parts[] = {{kData, 16, false}, {kData, 0, false}, {kData, 1, true}};
  vq_->chain(0, parts);
  auto q = make();
  std::vector<ChainSegment> out;
  ASSERT_TRUE(q->read_chain(0, out).has_value());
  EXPECT_EQ(out.size(), 2u);
}

TEST_F(SplitQueueTest, IndirectTablesAreReadWhenNegotiated) {
  vq_->set_table_desc(kTable, 0, kData, 16, kDescNext, 1);
  vq_->set_table_desc(kTable, 1, kData + 0x1000, 512, kDescWrite | kDescNext, 2);
  vq_->set_table_desc(kTable, 2, kData + 0x2000, 1, kDescWrite);
  vq_->set_desc(5, kTable, 3 * 16, kDescIndirect);
  auto q = make(true);
  std::vector<ChainSegment> out;
  ASSERT_TRUE(q->read_chain(5, out).has_value());
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[1].len, 512u);
  EXPECT_EQ(chain_error(5, false), QueueErrc::IndirectNotNegotiated);
}

TEST_F(SplitQueueTest, IndirectTablesAreValidated) {
  // Nested.
  vq_->set_table_desc(kTable, 0, kTable, 16, kDescIndirect);
  vq_->set_desc(0, kTable, 16, kDescIndirect);
  EXPECT_EQ(chain_error(0), QueueErrc::IndirectNested);
  // With NEXT.
  vq_->set_desc(0, kTable, 16, kDescIndirect | kDescNext, 1);
  EXPECT_EQ(chain_error(0), QueueErrc::IndirectWithNext);
  // Empty, not a whole number of descriptors, longer than the queue.
  vq_->set_desc(0, kTable, 0, kDescIndirect);
  EXPECT_EQ(chain_error(0), QueueErrc::IndirectBadLength);
  vq_->set_desc(0, kTable, 24, kDescIndirect);
  EXPECT_EQ(chain_error(0), QueueErrc::IndirectBadLength);
  vq_->set_desc(0, kTable, 16 * (kSize + 1), kDescIndirect);
  EXPECT_EQ(chain_error(0), QueueErrc::IndirectBadLength);
  // In the hole, and across the end of a region.
  vq_->set_desc(0, kHole, 16, kDescIndirect);
  EXPECT_EQ(chain_error(0), QueueErrc::IndirectUnmapped);
  vq_->set_desc(0, kHole - 16, 32, kDescIndirect);
  EXPECT_EQ(chain_error(0), QueueErrc::IndirectUnmapped);
  // A `next` past the table, and a loop inside it.
  vq_->set_table_desc(kTable, 0, kData, 16, kDescNext, 2);
  vq_->set_desc(0, kTable, 32, kDescIndirect);
  EXPECT_EQ(chain_error(0), QueueErrc::HeadOutOfRange);
  vq_->set_table_desc(kTable, 0, kData, 16, kDescNext, 1);
  vq_->set_table_desc(kTable, 1, kData, 16, kDescNext, 0);
  EXPECT_EQ(chain_error(0), QueueErrc::ChainTooLong);
}

// What Linux's virtio_blk sends for a request of seg_max (= size - 2) data pages: one indirect
// descriptor naming a table of `size` entries. The first version counted the indirect
// descriptor too and broke the queue on a guest's `dd bs=1M oflag=direct`.
TEST_F(SplitQueueTest, AFullIndirectTableOfQueueSizeEntriesIsRead) {
  for (std::uint16_t i = 0; i < kSize; ++i) {
    const bool last = i + 1 == kSize;
    vq_->set_table_desc(kTable, i, kData + 16 * i, last ? 1 : 16, last ? kDescWrite : kDescNext,
                        static_cast<std::uint16_t>(i + 1));
  }
  vq_->set_desc(3, kTable, 16 * kSize, kDescIndirect);
  auto q = make(true);
  std::vector<ChainSegment> out;
  ASSERT_TRUE(q->read_chain(3, out).has_value());
  EXPECT_EQ(out.size(), kSize);
  // One direct descriptor before the same table is one buffer too many.
  vq_->set_desc(2, kData, 16, kDescNext, 3);
  EXPECT_EQ(chain_error(2), QueueErrc::ChainTooLong);
}

TEST_F(SplitQueueTest, DirectAndIndirectTogetherAreBoundedByTheQueueSize) {
  // kSize - 1 direct descriptors, then an indirect table of 2: one more than the queue.
  for (std::uint16_t i = 0; i + 1 < kSize; ++i) vq_->set_desc(i, kData, 16, kDescNext, static_cast<std::uint16_t>(i + 1));
  vq_->set_desc(kSize - 1, kTable, 32, kDescIndirect);
  vq_->set_table_desc(kTable, 0, kData, 16, kDescNext, 1);
  vq_->set_table_desc(kTable, 1, kData, 1, kDescWrite);
  EXPECT_EQ(chain_error(0), QueueErrc::ChainTooLong);
}

TEST_F(SplitQueueTest, AnUnalignedIndirectTableIsCopiedToo) {
  vq_->set_table_desc(kTable + 8, 0, kData, 16, kDescNext, 1);
  vq_->set_table_desc(kTable + 8, 1, kData, 1, kDescWrite);
  vq_->set_desc(0, kTable + 8, 32, kDescIndirect);
  auto q = make();
  std::vector<ChainSegment> out;
  ASSERT_TRUE(q->read_chain(0, out).has_value());
  EXPECT_EQ(out.size(), 2u);
}

TEST_F(SplitQueueTest, TheDeviceWritesOnlyTheUsedRingAndItsEventWord) {
  auto q = make();
  ASSERT_TRUE(q.has_value());
  vq_->publish(3);
  EXPECT_EQ(q->load_avail_idx(), 1);
  EXPECT_EQ(q->load_avail_entry(0), 3);
  EXPECT_EQ(q->load_avail_entry(kSize), 3) << "positions wrap at the queue size";
  vq_->set_used_event(7);
  EXPECT_EQ(q->load_used_event(), 7);
  q->write_used(0, 3, 17);
  EXPECT_FALSE(vq_->pop_used().has_value()) << "an entry is invisible until the index is published";
  q->publish_used_idx(1);
  auto used = vq_->pop_used();
  ASSERT_TRUE(used.has_value());
  EXPECT_EQ(used->id, 3u);
  EXPECT_EQ(used->len, 17u);
  q->store_avail_event(9);
  EXPECT_EQ(vq_->avail_event(), 9);
}

TEST_F(SplitQueueTest, TheUsedRingMustBeWritable) {
  const RegionLayout layout[] = {{GuestAddress{0}, 1 << 20, false}, {GuestAddress{kHighBase}, 1 << 20, true}};
  auto memory = GuestMemoryBuilder::create(layout, MemoryBacking::Anonymous);
  ASSERT_TRUE(memory.has_value());
  auto q = SplitQueue::create(**memory, {GuestAddress{kDesc}, GuestAddress{kAvail}, GuestAddress{kHighBase}, kSize}, true);
  ASSERT_FALSE(q.has_value());
  EXPECT_EQ(q.error().code, QueueErrc::Unmapped);
  // Descriptors and the avail ring may be in read-only memory: the device only reads them.
  EXPECT_TRUE(SplitQueue::create(**memory, {GuestAddress{kHighBase}, GuestAddress{kHighBase + 0x1000}, GuestAddress{kUsed}, kSize},
                                 true)
                  .has_value());
}

}  // namespace
}  // namespace rf::virtio
