#include "ring/sqe.h"

#include <gtest/gtest.h>

#include "util/address.h"

namespace rf {
namespace {

TEST(SqeTest, FixedFileRefSetsTheFlagAndIndex) {
  char buf[16];
  const Sqe sqe = Sqe::read_fixed(FileRef::fixed({3}), buf, 16, 4096, BufferIndex{7});
  EXPECT_EQ(sqe.opcode, SqeOpcode::ReadFixed);
  EXPECT_EQ(sqe.flags, sqe_flag::kFixedFile);
  EXPECT_EQ(sqe.fd, 3);
  EXPECT_EQ(sqe.addr, address_of(buf));
  EXPECT_EQ(sqe.len, 16U);
  EXPECT_EQ(sqe.off, 4096U);
  EXPECT_EQ(sqe.buf_index, 7);
}

TEST(SqeTest, RawFileRefLeavesFlagsClear) {
  iovec iov{};
  const Sqe sqe = Sqe::writev(FileRef::raw(9), &iov, 1, 0).with_flags(sqe_flag::kIoLink).with_user_data(42);
  EXPECT_EQ(sqe.opcode, SqeOpcode::Writev);
  EXPECT_EQ(sqe.flags, sqe_flag::kIoLink);
  EXPECT_EQ(sqe.fd, 9);
  EXPECT_EQ(sqe.len, 1U);
  EXPECT_EQ(sqe.user_data, 42U);
}

TEST(SqeTest, FsyncAndNop) {
  const Sqe fsync = Sqe::fsync(FileRef::fixed({0}));
  EXPECT_EQ(fsync.opcode, SqeOpcode::Fsync);
  EXPECT_EQ(fsync.flags, sqe_flag::kFixedFile);
  const Sqe nop = Sqe::nop();
  EXPECT_EQ(nop.opcode, SqeOpcode::Nop);
  EXPECT_EQ(nop.flags, 0);
  EXPECT_EQ(nop.addr, 0U);
}

TEST(SqeTest, FallocatePutsTheLengthInAddrAndTheModeInLen) {
  // io_uring's FALLOCATE reads off = offset, addr = length, len = mode.
  const Sqe sqe = Sqe::fallocate(FileRef::fixed({0}), 4096, std::uint64_t{5} << 32, 0x3);
  EXPECT_EQ(sqe.opcode, SqeOpcode::Fallocate);
  EXPECT_EQ(sqe.flags, sqe_flag::kFixedFile);
  EXPECT_EQ(sqe.off, 4096U);
  EXPECT_EQ(sqe.addr, std::uint64_t{5} << 32);
  EXPECT_EQ(sqe.len, 0x3U);
}

}  // namespace
}  // namespace rf
