#include "ring/ring_fdinfo.h"

#include <string>

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace rf
