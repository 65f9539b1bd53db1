#include "ring/submission_queue.h"

#include <thread>

#include <gtest/gtest.h>

#include "support/kernel_caps.h"
#include "support/test_ring.h"

namespace rf {
namespace {

// Pushes one SQE, treating a full SQ as back-pressure. With SQPOLL the kernel publishes the
// completions of a batch before it advances the SQ head (io_submit_sqes flushes completions,
// then commits the SQ ring), so right after the last CQE arrives its slot can still look busy.
void push(Ring& ring, const Sqe& sqe) {
  const auto deadline = std::chrono::steady_clock::now() + test::kWait;
  while (!ring.try_push(sqe)) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "the kernel never advanced the SQ head";
    std::this_thread::yield();
  }
}

class SubmissionQueueTest : public ::testing::Test {
 protected:
  void SetUp() override { RF_REQUIRE(test::restrictions_feature()); }
};

TEST_F(SubmissionQueueTest, FullQueueIsBackPressureNotAnError) {
  RingOptions o;
  o.sq_entries = 4;
  auto ring = test::make_ring(RestrictionSet{}.allow(SqeOpcode::Nop), o);
  ASSERT_TRUE(ring) << ring.error().message;
  EXPECT_EQ(ring->sq().space_left(), 4U);
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(ring->try_push(Sqe::nop().with_user_data(i)));
  EXPECT_FALSE(ring->try_push(Sqe::nop()));
  EXPECT_EQ(ring->sq().space_left(), 0U);
  auto submitted = ring->submit();
  ASSERT_TRUE(submitted) << submitted.error().message;
  EXPECT_EQ(*submitted, 4U);
  EXPECT_EQ(ring->sq().space_left(), 4U);  // the kernel consumed them
  for (int i = 0; i < 4; ++i) {
    auto cqe = ring->wait_completion(test::kWait);
    ASSERT_TRUE(cqe);
    EXPECT_EQ(cqe->user_data, static_cast<std::uint64_t>(i));
  }
}

TEST_F(SubmissionQueueTest, IndicesWrapAroundManyTimesInOrder) {
  for (const bool sqpoll : {false, true}) {
    if (sqpoll && !test::sqpoll_feature().available) continue;
    RingOptions o;
    o.sq_entries = 8;
    if (sqpoll) o.sqpoll = SqPollOptions{std::nullopt, std::chrono::milliseconds(5)};
    auto ring = test::make_ring(RestrictionSet{}.allow(SqeOpcode::Nop), o);
    ASSERT_TRUE(ring) << ring.error().message;
    std::uint64_t next_expected = 0;
    std::uint64_t next_id = 0;
    for (int round = 0; round < 50; ++round) {
      const int batch = 1 + round % 8;
      for (int i = 0; i < batch; ++i) {
        ASSERT_NO_FATAL_FAILURE(push(*ring, Sqe::nop().with_user_data(next_id++)));
      }
      ASSERT_TRUE(ring->submit());
      for (int i = 0; i < batch; ++i) {
        auto cqe = ring->wait_completion(test::kWait);
        ASSERT_TRUE(cqe) << cqe.error().message;
        EXPECT_EQ(cqe->user_data, next_expected++) << (sqpoll ? "sqpoll" : "plain");
        EXPECT_EQ(cqe->res, 0);
      }
    }
    EXPECT_EQ(ring->sq().dropped(), 0U);
    EXPECT_FALSE(ring->sq().cq_overflow());
  }
}

TEST_F(SubmissionQueueTest, WaitTimesOutWhenNothingIsInFlight) {
  auto ring = test::make_ring(RestrictionSet{}.allow(SqeOpcode::Nop));
  ASSERT_TRUE(ring);
  auto cqe = ring->wait_completion(std::chrono::milliseconds(20));
  ASSERT_FALSE(cqe);
  EXPECT_EQ(cqe.error().code, RingErrc::Timeout);
}

}  // namespace
}  // namespace rf
