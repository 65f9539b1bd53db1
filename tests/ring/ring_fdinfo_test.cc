#include "ring/ring_fdinfo.h"

#include <string>

#include <gtest/gtest.h>

#include "ring/sqe.h"
#include "support/kernel_caps.h"
#include "support/test_ring.h"

namespace rf {
namespace {

// Shaped like Linux 6.18's io_uring fdinfo.
constexpr const char* kFdinfo =
    "pos:\t0\nflags:\t02000002\nmnt_id:\t17\nino:\t1579432\nSqMask:\t0x3\nSqHead:\t20\nSqTail:\t20\n"
    "CachedSqHead:\t20\nCqMask:\t0x7\nCqHead:\t0\nCqTail:\t8\nCachedCqTail:\t8\nSQEs:\t0\nCQEs:\t8\n"
    "    0: user_data:0, res:0, flag:0\nSqThread:\t-1\nUserFiles:\t0\nUserBufs:\t0\nPollList:\nCqOverflowList:\n"
    "  user_data=20, res=0, flags=0\n  user_data=21, res=0, flags=0\n  user_data=22, res=-13, flags=0\nNAPI:\tdisabled\n";

TEST(RingFdinfo, ReadsTheKernelsOwnCounters) {
  const auto c = parse_ring_fdinfo(kFdinfo);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->sq_head, 20u);
  EXPECT_EQ(c->cq_tail, 8u);
  EXPECT_EQ(c->overflow, 3u);
  EXPECT_EQ(c->sq_thread, -1) << "no SQPOLL thread";
  std::string with_thread = kFdinfo;
  with_thread.replace(with_thread.find("SqThread:\t-1"), 12, "SqThread:\t4242");
  EXPECT_EQ(parse_ring_fdinfo(with_thread)->sq_thread, 4242);
}

TEST(RingFdinfo, WithoutTheCountersThereIsNoAnswer) {
  // What fdinfo prints while the SQPOLL thread holds the ring's lock.
  EXPECT_FALSE(parse_ring_fdinfo("pos:\t0\nflags:\t02000002\nmnt_id:\t17\nino:\t1586213\n"));
  EXPECT_FALSE(parse_ring_fdinfo("CachedSqHead:\t20\nCachedCqTail:\t8\n"));  // no overflow section
  EXPECT_FALSE(parse_ring_fdinfo("CachedSqHead:\tx\nCachedCqTail:\t8\nCqOverflowList:\n"));
}

TEST(RingFdinfo, ATextCutShortStillHasTheCountersAndALowerBoundOnTheOverflow) {
  const std::string text = kFdinfo;
  // Cut inside the second overflow line: one whole line is counted, the cut one is not.
  const std::size_t cut = text.find("user_data=21") + 4;
  const auto c = parse_ring_fdinfo(std::string_view(text).substr(0, cut), false);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->sq_head, 20u);
  EXPECT_EQ(c->cq_tail, 8u);
  EXPECT_EQ(c->overflow, 1u);
  EXPECT_FALSE(c->complete);
  // Cut before the overflow section: the counters, and no overflow known.
  const auto early = parse_ring_fdinfo(std::string_view(text).substr(0, text.find("SqThread")), false);
  ASSERT_TRUE(early);
  EXPECT_EQ(early->overflow, 0u);
  EXPECT_FALSE(early->complete);
}

TEST(RingFdinfo, TheBytesARingPrintsGrowWithWhatItHolds) {
  const std::size_t small = ring_fdinfo_bytes(64, 128, 2, 1, 0);
  EXPECT_GT(ring_fdinfo_bytes(64, 128, 2, 1, 256), small);
  EXPECT_GT(ring_fdinfo_bytes(64, 128, 2, 64, 0), small);
  EXPECT_LT(small, 64u << 10) << "a bounded ring's text fits a small buffer";
}

// A ring that never reaps: NOPs overflow its CQ. A reader with a small bound reads only that much
// and says the overflow count is a lower bound; one with room reads it all.
TEST(RingFdinfo, AReadStopsAtItsBoundOnALongOverflowList) {
  RF_REQUIRE(test::restrictions_feature());
  RingOptions options;
  options.sq_entries = 8;
  auto ring = test::make_ring(RestrictionSet{}.allow(SqeOpcode::Nop), options);
  ASSERT_TRUE(ring) << ring.error().message;
  for (int batch = 0; batch < 64; ++batch) {
    for (int i = 0; i < 8; ++i) ASSERT_TRUE(ring->try_push(Sqe::nop().with_user_data(static_cast<std::uint64_t>(batch * 8 + i))));
    ASSERT_TRUE(ring->submit());
  }
  // 512 NOPs, a CQ of 16: 496 overflowed CQEs.
  const auto whole = read_ring_fdinfo(ring->fd());
  ASSERT_TRUE(whole) << whole.error();
  EXPECT_TRUE(whole->complete);
  EXPECT_EQ(whole->overflow, 512u - ring->info().cq_entries);
  const auto cut = read_ring_fdinfo(ring->fd(), 4096);
  ASSERT_TRUE(cut) << cut.error();
  EXPECT_FALSE(cut->complete);
  EXPECT_EQ(cut->sq_head, whole->sq_head);
  EXPECT_EQ(cut->cq_tail, whole->cq_tail);
  EXPECT_LT(cut->overflow, whole->overflow);
}

}  // namespace
}  // namespace rf
