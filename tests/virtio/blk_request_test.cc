#include "virtio/blk_request.h"

#include <gtest/gtest.h>

#include <cstring>

#include "device/guest_device.h"
#include "virtio_fixture.h"

namespace rf::virtio {
namespace {

using test::kHighBase;
using test::kHole;

constexpr std::uint64_t kHeader = 0x1000, kData = 0x20000, kStatus = 0x30000;
constexpr std::uint64_t kDiskBytes = 1 << 20;

class BlkRequestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    memory_ = test::make_two_region_memory();
    view_ = test::view_of(*memory_);
    auto policy = device_restrictions(std::nullopt, "blk-virtio");
    ASSERT_TRUE(policy.has_value());
    policy_ = *policy;
    limits_ = {DiskLimits{kDiskBytes, 512, false}};
    target_.validation = ValidationContext{&policy_, limits_, memory_.get(), kDeviceMaxTransfer};
    target_.serial = "ringfence-serial";
  }
  void header(std::uint32_t type, std::uint64_t sector, std::uint64_t at = kHeader) {
    BlkRequestHeader h{type, 0, sector};
    std::memcpy(view_.at(at, sizeof h), &h, sizeof h);
  }
  void segments(const std::vector<BlkZeroingSegment>& list, std::uint64_t at = kData) {
    std::memcpy(view_.at(at, list.size() * sizeof(BlkZeroingSegment)), list.data(), list.size() * sizeof(BlkZeroingSegment));
  }
  ParsedBlkRequest parse(std::vector<ChainSegment> chain) { return parse_blk_request(chain, target_, pieces_); }
  static ChainSegment in(std::uint64_t gpa, std::uint32_t len) { return {GuestAddress{gpa}, len, true}; }
  static ChainSegment out(std::uint64_t gpa, std::uint32_t len) { return {GuestAddress{gpa}, len, false}; }

  GuestMemoryMap memory_;
  test::GuestView view_;
  RestrictionSet policy_;
  std::vector<DiskLimits> limits_;
  BlkTarget target_;
  std::vector<ValidatedRequest> pieces_;
};

TEST_F(BlkRequestTest, AWriteBecomesOneWriteFixedAtItsSector) {
  header(kBlkOut, 2);
  const auto p = parse({out(kHeader, 16), out(kData, 4096), in(kStatus, 1)});
  EXPECT_EQ(p.refusal, BlkRefusal::None);
  ASSERT_EQ(pieces_.size(), 1u);
  EXPECT_EQ(pieces_[0].op, SqeOpcode::WriteFixed);
  EXPECT_EQ(pieces_[0].offset, 1024u);
  EXPECT_EQ(pieces_[0].len, 4096u);
  EXPECT_EQ(pieces_[0].host, view_.at(kData));
  EXPECT_EQ(p.status, view_.at(kStatus));
  EXPECT_EQ(blk_used_len(p, true), 1u);
}

TEST_F(BlkRequestTest, AReadWritesTheGuestAndReportsTheBytes) {
  header(kBlkIn, 0);
  const auto p = parse({out(kHeader, 16), in(kData, 4096), in(kData + 4096, 512), in(kStatus, 1)});
  EXPECT_EQ(p.refusal, BlkRefusal::None);
  ASSERT_EQ(pieces_.size(), 2u);
  EXPECT_EQ(pieces_[0].op, SqeOpcode::ReadFixed);
  EXPECT_EQ(pieces_[1].offset, 4096u);
  EXPECT_EQ(blk_used_len(p, true), 4096u + 512 + 1);
  EXPECT_EQ(blk_used_len(p, false), 1u) << "a failed read reports only the status byte";
}

TEST_F(BlkRequestTest, NoFramingIsAssumed) {
  // The header cut over two descriptors, the status sharing the data's last descriptor.
  header(kBlkIn, 1);
  const auto p = parse({out(kHeader, 8), out(kHeader + 8, 8), in(kData, 512 + 1)});
  EXPECT_EQ(p.refusal, BlkRefusal::None);
  ASSERT_EQ(pieces_.size(), 1u);
  EXPECT_EQ(pieces_[0].len, 512u);
  EXPECT_EQ(p.status, view_.at(kData + 512));
}

TEST_F(BlkRequestTest, WithoutAStatusByteThereIsNothingToAnswer) {
  header(kBlkOut, 0);
  auto p = parse({out(kHeader, 16), out(kData, 512)});
  EXPECT_EQ(p.refusal, BlkRefusal::NoStatus);
  EXPECT_EQ(p.status, nullptr);
  EXPECT_TRUE(pieces_.empty());
  EXPECT_EQ(blk_used_len(p, false), 0u);
  // A status byte in the hole, or one past 2^64.
  p = parse({out(kHeader, 16), in(kHole, 1)});
  EXPECT_EQ(p.refusal, BlkRefusal::NoStatus);
  p = parse({out(kHeader, 16), in(~std::uint64_t{0}, 2)});
  EXPECT_EQ(p.refusal, BlkRefusal::NoStatus);
}

TEST_F(BlkRequestTest, AShortOrUnmappedHeaderFailsWithIoErr) {
  header(kBlkIn, 0);
  auto p = parse({out(kHeader, 15), in(kStatus, 1)});
  EXPECT_EQ(p.refusal, BlkRefusal::BadHeader);
  EXPECT_EQ(p.status_value, kBlkStatusIoErr);
  p = parse({out(kHole, 16), in(kStatus, 1)});
  EXPECT_EQ(p.refusal, BlkRefusal::BadHeader);
}

TEST_F(BlkRequestTest, DataInTheWrongDirectionIsABadLayout) {
  header(kBlkIn, 0);
  EXPECT_EQ(parse({out(kHeader, 16), out(kData, 512), in(kData, 512), in(kStatus, 1)}).refusal, BlkRefusal::BadLayout);
  EXPECT_EQ(parse({out(kHeader, 16), in(kStatus, 1)}).refusal, BlkRefusal::BadLayout) << "a read of nothing";
  header(kBlkOut, 0);
  EXPECT_EQ(parse({out(kHeader, 16), out(kData, 512), in(kData, 512), in(kStatus, 1)}).refusal, BlkRefusal::BadLayout);
  EXPECT_EQ(parse({out(kHeader, 16), in(kStatus, 1)}).refusal, BlkRefusal::BadLayout) << "a write of nothing";
  EXPECT_TRUE(pieces_.empty());
}

TEST_F(BlkRequestTest, EachPieceGoesThroughTheMediatorsRules) {
  const auto rule = [&](std::uint32_t type, std::uint64_t sector, ChainSegment data) {
    header(type, sector);
    const auto p = parse({out(kHeader, 16), data, in(kStatus, 1)});
    EXPECT_EQ(p.refusal, BlkRefusal::Rule);
    EXPECT_TRUE(pieces_.empty()) << "nothing of a refused request reaches the kernel";
    EXPECT_EQ(p.status_value, kBlkStatusIoErr);
    return p.rule;
  };
  EXPECT_EQ(rule(kBlkIn, kDiskBytes / 512, in(kData, 512)), RefusalRule::Range) << "one sector past the end";
  EXPECT_EQ(rule(kBlkIn, kDiskBytes / 512 - 1, in(kData, 1024)), RefusalRule::Range) << "straddling the end";
  EXPECT_EQ(rule(kBlkIn, std::uint64_t{1} << 56, in(kData, 512)), RefusalRule::Range) << "sector * 512 passes 2^64";
  EXPECT_EQ(rule(kBlkIn, 0, in(kData, 100)), RefusalRule::Alignment);
  EXPECT_EQ(rule(kBlkIn, 0, in(kHole, 512)), RefusalRule::Memory) << "a buffer in the hole";
  EXPECT_EQ(rule(kBlkOut, 0, out(kHole - 512, 1024)), RefusalRule::Memory) << "a buffer across the end of RAM";
  limits_[0].read_only = true;
  EXPECT_EQ(rule(kBlkOut, 0, out(kData, 512)), RefusalRule::ReadOnly);
}

TEST_F(BlkRequestTest, DataIsCutAtBufferWindowsAndAtTheMaxTransfer) {
  // The high region is two 1 MiB buffers: [2, 3) and [3, 4) MiB.
  header(kBlkIn, 0);
  const std::uint64_t across = kHighBase + (1 << 20) - 2048;
  auto p = parse({out(kHeader, 16), in(across, 4096), in(kStatus, 1)});
  EXPECT_EQ(p.refusal, BlkRefusal::None);
  ASSERT_EQ(pieces_.size(), 2u);
  EXPECT_EQ(pieces_[0].len, 2048u);
  EXPECT_EQ(pieces_[1].len, 2048u);
  EXPECT_EQ(pieces_[1].offset, 2048u);
  EXPECT_NE(pieces_[0].buffer, pieces_[1].buffer);
  target_.validation.max_transfer = 64 << 10;
  p = parse({out(kHeader, 16), in(kHighBase, 160 << 10), in(kStatus, 1)});
  EXPECT_EQ(p.refusal, BlkRefusal::None);
  ASSERT_EQ(pieces_.size(), 3u);
  EXPECT_EQ(pieces_[2].len, 32u << 10);
  EXPECT_EQ(pieces_[2].offset, 128u << 10);
}

TEST_F(BlkRequestTest, ARequestOfTooManyPiecesIsRefusedWhole) {
  header(kBlkIn, 0);
  std::vector<ChainSegment> chain{out(kHeader, 16)};
  for (std::size_t i = 0; i <= kMaxPiecesPerRequest; ++i) chain.push_back(in(kData + 512 * i, 512));
  chain.push_back(in(kStatus, 1));
  const auto p = parse(chain);
  EXPECT_EQ(p.refusal, BlkRefusal::TooManyPieces);
  EXPECT_TRUE(pieces_.empty());
}

TEST_F(BlkRequestTest, FlushIsOneFsync) {
  header(kBlkFlush, 0);
  const auto p = parse({out(kHeader, 16), in(kStatus, 1)});
  EXPECT_EQ(p.refusal, BlkRefusal::None);
  ASSERT_EQ(pieces_.size(), 1u);
  EXPECT_EQ(pieces_[0].op, SqeOpcode::Fsync);
}

TEST_F(BlkRequestTest, GetIdWritesTheSerialAtOnce) {
  header(kBlkGetId, 0);
  std::memset(view_.at(kData, 20), 0x55, 20);
  const auto p = parse({out(kHeader, 16), in(kData, 20), in(kStatus, 1)});
  EXPECT_EQ(p.refusal, BlkRefusal::None);
  EXPECT_TRUE(pieces_.empty());
  EXPECT_EQ(p.status_value, kBlkStatusOk);
  EXPECT_EQ(std::memcmp(view_.at(kData), "ringfence-serial\0\0\0\0", 20), 0);
  EXPECT_EQ(blk_used_len(p, true), 21u);
}

TEST_F(BlkRequestTest, AnUnknownTypeIsUnsupported) {
  for (const std::uint32_t type : {kBlkDiscard, kBlkWriteZeroes, 7u, 0xffffffffu}) {  // zeroing: not negotiated
    header(type, 0);
    segments({{0, 8, 0}});
    const auto p = parse({out(kHeader, 16), out(kData, 16), in(kStatus, 1)});
    EXPECT_EQ(p.refusal, BlkRefusal::Unsupported) << type;
    EXPECT_EQ(p.status_value, kBlkStatusUnsupported);
    EXPECT_TRUE(pieces_.empty());
  }
}

class BlkZeroingTest : public BlkRequestTest {
 protected:
  void SetUp() override {
    BlkRequestTest::SetUp();
    target_.zeroing = BlkZeroing{true, true, true};
    target_.validation.max_zeroing = kMaxZeroingBytes;
  }
  // A request of `n` segments at kData, one descriptor each.
  ParsedBlkRequest parse_segments(std::uint32_t type, std::vector<BlkZeroingSegment> list) {
    header(type, 0);
    segments(list);
    std::vector<ChainSegment> chain{out(kHeader, 16)};
    for (std::size_t i = 0; i < list.size(); ++i) chain.push_back(out(kData + 16 * i, 16));
    chain.push_back(in(kStatus, 1));
    return parse(chain);
  }
};

TEST_F(BlkZeroingTest, DiscardPunchesAHoleForEachSegment) {
  const auto p = parse_segments(kBlkDiscard, {{8, 8, 0}, {64, 16, 0}});
  EXPECT_EQ(p.refusal, BlkRefusal::None);
  ASSERT_EQ(pieces_.size(), 2u);
  EXPECT_EQ(pieces_[0].op, SqeOpcode::Fallocate);
  EXPECT_EQ(pieces_[0].fallocate_mode, kPunchHoleMode);
  EXPECT_EQ(pieces_[0].offset, 4096u);
  EXPECT_EQ(pieces_[0].len, 4096u);
  EXPECT_EQ(pieces_[1].offset, 32768u);
  EXPECT_EQ(pieces_[1].len, 8192u);
  EXPECT_EQ(blk_used_len(p, true), 1u) << "zeroing writes nothing into the guest";
}

TEST_F(BlkZeroingTest, WriteZeroesPunchesOnlyWithUnmapAndWhereTheDiskCan) {
  auto p = parse_segments(kBlkWriteZeroes, {{0, 8, 0}, {8, 8, kBlkZeroingFlagUnmap}});
  EXPECT_EQ(p.refusal, BlkRefusal::None);
  ASSERT_EQ(pieces_.size(), 2u);
  EXPECT_EQ(pieces_[0].fallocate_mode, kZeroRangeMode);
  EXPECT_EQ(pieces_[1].fallocate_mode, kPunchHoleMode);
  target_.zeroing.may_unmap = false;
  p = parse_segments(kBlkWriteZeroes, {{8, 8, kBlkZeroingFlagUnmap}});
  ASSERT_EQ(pieces_.size(), 1u);
  EXPECT_EQ(pieces_[0].fallocate_mode, kZeroRangeMode);
}

TEST_F(BlkZeroingTest, SegmentsAreReadWhereverTheDescriptorsCutThem) {
  // Header and two segments in one descriptor, cut at odd places across three.
  BlkRequestHeader h{kBlkWriteZeroes, 0, 0};
  const BlkZeroingSegment list[2] = {{2, 4, 0}, {100, 2, 0}};
  std::memcpy(view_.at(kData, 16), &h, 16);
  std::memcpy(view_.at(kData + 16, 32), list, 32);
  const auto p = parse({out(kData, 5), out(kData + 5, 20), out(kData + 25, 23), in(kStatus, 1)});
  EXPECT_EQ(p.refusal, BlkRefusal::None);
  ASSERT_EQ(pieces_.size(), 2u);
  EXPECT_EQ(pieces_[0].offset, 1024u);
  EXPECT_EQ(pieces_[0].len, 2048u);
  EXPECT_EQ(pieces_[1].offset, 51200u);
}

// GUEST-CONTROLLED segments, each refused the way the spec says, and nothing of the request
// reaches the kernel.
TEST_F(BlkZeroingTest, HostileSegmentsFailTheWholeRequest) {
  const auto refused = [&](std::uint32_t type, std::vector<BlkZeroingSegment> list) {
    const auto p = parse_segments(type, list);
    EXPECT_TRUE(pieces_.empty());
    return p;
  };
  const BlkZeroingSegment good{0, 8, 0};
  // Flags: unmap on a DISCARD, or a bit the spec does not define: UNSUPP.
  auto p = refused(kBlkDiscard, {good, {8, 8, kBlkZeroingFlagUnmap}});
  EXPECT_EQ(p.refusal, BlkRefusal::Unsupported);
  EXPECT_EQ(p.status_value, kBlkStatusUnsupported);
  EXPECT_EQ(refused(kBlkWriteZeroes, {{8, 8, 2}}).refusal, BlkRefusal::Unsupported);
  EXPECT_EQ(refused(kBlkWriteZeroes, {{8, 8, 0x80000000u}}).refusal, BlkRefusal::Unsupported);
  // The mediator's rules, IOERR.
  const auto rule = [&](BlkZeroingSegment bad) {
    const auto r = refused(kBlkWriteZeroes, {good, bad});
    EXPECT_EQ(r.refusal, BlkRefusal::Rule);
    EXPECT_EQ(r.status_value, kBlkStatusIoErr);
    return r.rule;
  };
  EXPECT_EQ(rule({kDiskBytes / 512, 1, 0}), RefusalRule::Range) << "one sector past the end";
  EXPECT_EQ(rule({kDiskBytes / 512 - 1, 2, 0}), RefusalRule::Range) << "straddling the end";
  EXPECT_EQ(rule({std::uint64_t{1} << 56, 1, 0}), RefusalRule::Range) << "sector * 512 passes 2^64";
  EXPECT_EQ(rule({~std::uint64_t{0} >> 9, 0xffffffffu, 0}), RefusalRule::Range) << "the end passes 2^64";
  EXPECT_EQ(rule({0, 0, 0}), RefusalRule::Length) << "no sectors";
  limits_[0].size_bytes = std::uint64_t{1} << 40;
  EXPECT_EQ(rule({0, kMaxZeroingBytes / 512 + 1, 0}), RefusalRule::Length) << "past max_write_zeroes_sectors";
  limits_[0].logical_block_size = 4096;
  EXPECT_EQ(rule({1, 8, 0}), RefusalRule::Alignment);
  EXPECT_EQ(rule({8, 9, 0}), RefusalRule::Alignment);
  limits_[0].read_only = true;
  EXPECT_EQ(rule({8, 8, 0}), RefusalRule::ReadOnly);
}

TEST_F(BlkZeroingTest, LayoutAndSegmentCountAreChecked) {
  header(kBlkDiscard, 0);
  segments({{0, 8, 0}, {8, 8, 0}});
  EXPECT_EQ(parse({out(kHeader, 16), in(kStatus, 1)}).refusal, BlkRefusal::BadLayout) << "no segment";
  EXPECT_EQ(parse({out(kHeader, 16), out(kData, 17), in(kStatus, 1)}).refusal, BlkRefusal::BadLayout) << "a partial segment";
  EXPECT_EQ(parse({out(kHeader, 16), out(kData, 16), in(kData + 64, 8), in(kStatus, 1)}).refusal, BlkRefusal::BadLayout)
      << "data for the device to write";
  EXPECT_EQ(parse({out(kHeader, 16), out(kHole, 16), in(kStatus, 1)}).refusal, BlkRefusal::BadHeader)
      << "a segment in the hole";
  std::vector<BlkZeroingSegment> many(kMaxZeroingSegments + 1, BlkZeroingSegment{0, 8, 0});
  EXPECT_EQ(parse_segments(kBlkDiscard, many).refusal, BlkRefusal::TooManyPieces);
  many.pop_back();
  EXPECT_EQ(parse_segments(kBlkDiscard, many).refusal, BlkRefusal::None);
  EXPECT_EQ(pieces_.size(), kMaxZeroingSegments);
}

TEST_F(BlkZeroingTest, OnlyTheNegotiatedTypeIsServed) {
  target_.zeroing.discard = false;
  EXPECT_EQ(parse_segments(kBlkDiscard, {{0, 8, 0}}).refusal, BlkRefusal::Unsupported);
  EXPECT_EQ(parse_segments(kBlkWriteZeroes, {{0, 8, 0}}).refusal, BlkRefusal::None);
  target_.zeroing = BlkZeroing{true, false, false};
  EXPECT_EQ(parse_segments(kBlkWriteZeroes, {{0, 8, 0}}).refusal, BlkRefusal::Unsupported);
  EXPECT_EQ(parse_segments(kBlkDiscard, {{0, 8, 0}}).refusal, BlkRefusal::None);
}

TEST_F(BlkRequestTest, AFailedPolicyRuleStopsFlushToo) {
  RestrictionSet none;  // allows nothing
  target_.validation.policy = &none;
  header(kBlkFlush, 0);
  const auto p = parse({out(kHeader, 16), in(kStatus, 1)});
  EXPECT_EQ(p.refusal, BlkRefusal::Rule);
  EXPECT_EQ(p.rule, RefusalRule::Opcode);
}

}  // namespace
}  // namespace rf::virtio
