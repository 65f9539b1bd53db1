// The guest's restated SQE/CQE layouts and constants must be io_uring's, byte for byte.
#include "abi/ring_entries.h"

#include <cstddef>

#include <gtest/gtest.h>

#include "abi/ring_descriptor.h"
#include "sys/uapi_compat.h"

namespace rf::abi {
namespace {

TEST(RingEntries, SqeLayoutIsIoUrings) {
  EXPECT_EQ(sizeof(GuestSqe), sizeof(io_uring_sqe));
  EXPECT_EQ(offsetof(GuestSqe, opcode), offsetof(io_uring_sqe, opcode));
  EXPECT_EQ(offsetof(GuestSqe, flags), offsetof(io_uring_sqe, flags));
  EXPECT_EQ(offsetof(GuestSqe, ioprio), offsetof(io_uring_sqe, ioprio));
  EXPECT_EQ(offsetof(GuestSqe, fd), offsetof(io_uring_sqe, fd));
  EXPECT_EQ(offsetof(GuestSqe, off), offsetof(io_uring_sqe, off));
  EXPECT_EQ(offsetof(GuestSqe, addr), offsetof(io_uring_sqe, addr));
  EXPECT_EQ(offsetof(GuestSqe, len), offsetof(io_uring_sqe, len));
  EXPECT_EQ(offsetof(GuestSqe, op_flags), offsetof(io_uring_sqe, rw_flags));
  EXPECT_EQ(offsetof(GuestSqe, user_data), offsetof(io_uring_sqe, user_data));
  EXPECT_EQ(offsetof(GuestSqe, buf_index), offsetof(io_uring_sqe, buf_index));
  EXPECT_EQ(offsetof(GuestSqe, personality), offsetof(io_uring_sqe, personality));
  EXPECT_EQ(offsetof(GuestSqe, splice_fd_in), offsetof(io_uring_sqe, splice_fd_in));
  EXPECT_EQ(offsetof(GuestSqe, addr3), offsetof(io_uring_sqe, addr3));
}

TEST(RingEntries, CqeLayoutIsIoUrings) {
  EXPECT_EQ(sizeof(GuestCqe), sizeof(io_uring_cqe));
  EXPECT_EQ(offsetof(GuestCqe, user_data), offsetof(io_uring_cqe, user_data));
  EXPECT_EQ(offsetof(GuestCqe, res), offsetof(io_uring_cqe, res));
  EXPECT_EQ(offsetof(GuestCqe, flags), offsetof(io_uring_cqe, flags));
}

TEST(RingEntries, ConstantsAreIoUrings) {
  EXPECT_EQ(kOpNop, IORING_OP_NOP);
  EXPECT_EQ(kOpFsync, IORING_OP_FSYNC);
  EXPECT_EQ(kOpReadFixed, IORING_OP_READ_FIXED);
  EXPECT_EQ(kOpWriteFixed, IORING_OP_WRITE_FIXED);
  EXPECT_EQ(kSqeFixedFile, IOSQE_FIXED_FILE);
  EXPECT_EQ(kSqFlagNeedWakeup, IORING_SQ_NEED_WAKEUP);
  EXPECT_EQ(kCqFlagNotifyDisabled, IORING_CQ_EVENTFD_DISABLED);
}

}  // namespace
}  // namespace rf::abi
