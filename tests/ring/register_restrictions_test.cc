// The seven cases of liburing's test/register-restrictions.c, expressed through ringfence's
// API. Where ringfence's types make a case impossible to express (cases 6 and 7), the test
// shows the kernel would refuse it too, through the raw syscall layer.
#include <sys/uio.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <map>

#include <gtest/gtest.h>

#include "ring/setup.h"
#include "support/kernel_caps.h"
#include "support/test_ring.h"
#include "sys/syscalls.h"

namespace rf {
namespace {

class RegisterRestrictionsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RF_REQUIRE(test::restrictions_feature());
    ASSERT_EQ(::pipe(pipe_), 0);
  }
  void TearDown() override {
    for (int fd : pipe_) {
      if (fd >= 0) ::close(fd);
    }
  }

  // Submits `sqes` in one batch and returns user_data -> result.
  std::map<std::uint64_t, int> run_batch(Ring& ring, std::initializer_list<Sqe> sqes) {
    for (const Sqe& sqe : sqes) EXPECT_TRUE(ring.try_push(sqe));
    EXPECT_TRUE(ring.submit());
    std::map<std::uint64_t, int> results;
    for (std::size_t i = 0; i < sqes.size(); ++i) {
      auto cqe = ring.wait_completion(test::kWait);
      EXPECT_TRUE(cqe) << cqe.error().message;
      if (cqe) results[cqe->user_data] = cqe->res;
    }
    return results;
  }

  int pipe_[2] = {-1, -1};
  std::uint64_t word_ = 0;
  iovec vec_{&word_, sizeof(word_)};
};

// 1. sqe_op: WRITEV and WRITE allowed; WRITEV runs, READV is denied.
TEST_F(RegisterRestrictionsTest, SqeOp) {
  auto ring = test::make_ring(RestrictionSet{}.allow(SqeOpcode::Writev).allow(SqeOpcode::Write));
  ASSERT_TRUE(ring) << ring.error().message;
  auto r = run_batch(*ring, {Sqe::writev(FileRef::raw(pipe_[1]), &vec_, 1, 0).with_user_data(1),
                             Sqe::readv(FileRef::raw(pipe_[0]), &vec_, 1, 0).with_user_data(2)});
  EXPECT_EQ(r[1], static_cast<int>(sizeof(word_)));
  EXPECT_EQ(r[2], -EACCES);
}

// 2. register_op: only REGISTER_BUFFERS allowed; after enable buffers register, files do not.
TEST_F(RegisterRestrictionsTest, RegisterOp) {
  auto ring = test::make_ring(RestrictionSet{}.allow(RegisterOpcode::RegisterBuffers));
  ASSERT_TRUE(ring) << ring.error().message;
  // SAFETY: the fixture's own word, registered as a buffer of its size; std::byte may alias it.
  const BufferRegion region{reinterpret_cast<std::byte*>(&word_), sizeof(word_)};
  auto buffers = ring->register_buffers({&region, 1});
  EXPECT_TRUE(buffers) << buffers.error().message;
  auto files = ring->register_files(pipe_);
  ASSERT_FALSE(files);
  EXPECT_EQ(files.error().code, RingErrc::RegisterDenied);
  EXPECT_EQ(files.error().sys_errno, EACCES);
}

// 3. fixed_file: WRITEV/READV with FIXED_FILE required, REGISTER_FILES allowed after enable.
TEST_F(RegisterRestrictionsTest, FixedFile) {
  auto ring = test::make_ring(RestrictionSet{}
                                  .allow(SqeOpcode::Writev)
                                  .allow(SqeOpcode::Readv)
                                  .require_flags(sqe_flag::kFixedFile)
                                  .allow(RegisterOpcode::RegisterFiles));
  ASSERT_TRUE(ring) << ring.error().message;
  ASSERT_TRUE(ring->register_files(pipe_));
  auto r = run_batch(*ring, {Sqe::writev(FileRef::fixed({1}), &vec_, 1, 0).with_user_data(1),
                             Sqe::readv(FileRef::fixed({0}), &vec_, 1, 0).with_user_data(2),
                             Sqe::writev(FileRef::raw(pipe_[1]), &vec_, 1, 0).with_user_data(3)});
  EXPECT_EQ(r[1], static_cast<int>(sizeof(word_)));
  EXPECT_EQ(r[2], static_cast<int>(sizeof(word_)));
  EXPECT_EQ(r[3], -EACCES);
}

// 4. flags: ASYNC and IO_LINK allowed, FIXED_FILE required; DRAIN and missing FIXED_FILE denied.
TEST_F(RegisterRestrictionsTest, Flags) {
  auto disabled = DisabledRing::create(RingOptions{});
  ASSERT_TRUE(disabled);
  ASSERT_TRUE(disabled->register_files(pipe_));
  auto restricted = std::move(*disabled).restrict(RestrictionSet{}
                                                      .allow(SqeOpcode::Writev)
                                                      .allow_flags(sqe_flag::kAsync | sqe_flag::kIoLink)
                                                      .require_flags(sqe_flag::kFixedFile));
  ASSERT_TRUE(restricted);
  auto ring = std::move(*restricted).enable();
  ASSERT_TRUE(ring) << ring.error().message;
  const auto out = FileRef::fixed({1});
  auto allowed = run_batch(*ring, {Sqe::writev(out, &vec_, 1, 0).with_user_data(1),
                                   Sqe::writev(out, &vec_, 1, 0).with_flags(sqe_flag::kAsync).with_user_data(2),
                                   Sqe::writev(out, &vec_, 1, 0).with_flags(sqe_flag::kIoLink).with_user_data(3)});
  for (std::uint64_t id : {1, 2, 3}) EXPECT_EQ(allowed[id], static_cast<int>(sizeof(word_))) << "user_data " << id;
  EXPECT_EQ(run_batch(*ring, {Sqe::writev(out, &vec_, 1, 0).with_flags(sqe_flag::kIoDrain).with_user_data(4)})[4], -EACCES);
  const auto raw = FileRef::raw(pipe_[1]);
  EXPECT_EQ(run_batch(*ring, {Sqe::writev(raw, &vec_, 1, 0).with_flags(sqe_flag::kIoDrain).with_user_data(5)})[5], -EACCES);
  EXPECT_EQ(run_batch(*ring, {Sqe::writev(raw, &vec_, 1, 0).with_flags(sqe_flag::kAsync).with_user_data(6)})[6], -EACCES);
  EXPECT_EQ(run_batch(*ring, {Sqe::writev(raw, &vec_, 1, 0).with_user_data(7)})[7], -EACCES);
}

// 5. empty: nothing allowed; register calls and SQEs are all denied.
TEST_F(RegisterRestrictionsTest, Empty) {
  auto ring = test::make_ring(RestrictionSet{});
  ASSERT_TRUE(ring) << ring.error().message;
  // SAFETY: the fixture's own word, offered as a buffer of its size; std::byte may alias it.
  const BufferRegion region{reinterpret_cast<std::byte*>(&word_), sizeof(word_)};
  auto buffers = ring->register_buffers({&region, 1});
  ASSERT_FALSE(buffers);
  EXPECT_EQ(buffers.error().sys_errno, EACCES);
  auto files = ring->register_files(pipe_);
  ASSERT_FALSE(files);
  EXPECT_EQ(files.error().sys_errno, EACCES);
  EXPECT_EQ(test::run_one(*ring, Sqe::writev(FileRef::raw(pipe_[1]), &vec_, 1, 0)), -EACCES);
}

// 6. rings_not_disabled: ringfence always creates rings with R_DISABLED, so restricting an
// enabled ring cannot be expressed; the kernel refuses it with -EBADFD.
TEST_F(RegisterRestrictionsTest, RingsNotDisabled) {
  auto ours = DisabledRing::create(RingOptions{});
  ASSERT_TRUE(ours);
  EXPECT_NE(ours->info().setup_flags & IORING_SETUP_R_DISABLED, 0U);

  io_uring_params params{};
  const int fd = sys::io_uring_setup(8, &params);
  ASSERT_GE(fd, 0);
  UniqueFd plain(fd);
  io_uring_restriction entry{};
  entry.opcode = IORING_RESTRICTION_SQE_OP;
  entry.sqe_op = IORING_OP_WRITEV;
  EXPECT_EQ(sys::io_uring_register(plain.get(), IORING_REGISTER_RESTRICTIONS, &entry, 1), -EBADFD);
}

// 7. rings_disabled: a DisabledRing has no submit (see setup_test.cc); the kernel refuses
// io_uring_enter on it with -EBADFD.
TEST_F(RegisterRestrictionsTest, RingsDisabled) {
  auto ring = DisabledRing::create(RingOptions{});
  ASSERT_TRUE(ring);
  EXPECT_EQ(sys::io_uring_enter(ring->fd(), 1, 0, 0, nullptr, 0), -EBADFD);
}

}  // namespace
}  // namespace rf
