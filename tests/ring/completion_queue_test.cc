#include "ring/completion_queue.h"

#include <gtest/gtest.h>

#include "support/kernel_caps.h"
#include "support/test_ring.h"

namespace rf {
namespace {

TEST(CompletionQueueTest, ReadyCountsAndPopFreesSlots) {
  RF_REQUIRE(test::restrictions_feature());
  RingOptions o;
  o.sq_entries = 4;
  o.cq_entries = 8;
  auto ring = test::make_ring(RestrictionSet{}.allow(SqeOpcode::Nop), o);
  ASSERT_TRUE(ring) << ring.error().message;
  EXPECT_EQ(ring->cq().entries(), 8U);
  EXPECT_EQ(ring->cq().ready(), 0U);
  EXPECT_FALSE(ring->pop_completion());
  for (int round = 0; round < 2; ++round) {
    for (int i = 0; i < 4; ++i) ASSERT_TRUE(ring->try_push(Sqe::nop().with_user_data(i)));
    ASSERT_TRUE(ring->submit());
  }
  // A plain ring completes NOPs inline during io_uring_enter.
  EXPECT_EQ(ring->cq().ready(), 8U);
  for (int i = 0; i < 8; ++i) {
    auto cqe = ring->pop_completion();
    ASSERT_TRUE(cqe);
    EXPECT_EQ(cqe->user_data, static_cast<std::uint64_t>(i % 4));
  }
  EXPECT_EQ(ring->cq().ready(), 0U);
  EXPECT_EQ(ring->cq().overflow(), 0U);
}

TEST(CompletionQueueTest, EventfdToggle) {
  RF_REQUIRE(test::restrictions_feature());
  auto ring = test::make_ring(RestrictionSet{}.allow(SqeOpcode::Nop));
  ASSERT_TRUE(ring);
  EXPECT_TRUE(ring->cq().eventfd_enabled());
  ring->cq().set_eventfd_enabled(false);
  EXPECT_FALSE(ring->cq().eventfd_enabled());
  ring->cq().set_eventfd_enabled(true);
  EXPECT_TRUE(ring->cq().eventfd_enabled());
}

}  // namespace
}  // namespace rf
