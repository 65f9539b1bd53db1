#include "fuzz/live/footprint.h"

#include <limits>

#include <gtest/gtest.h>

namespace rf::fuzz {
namespace {

TEST(WriteFootprint, MergesOverlappingAndTouchingRanges) {
  WriteFootprint f;
  f.add(0, 512);
  f.add(1024, 512);
  EXPECT_TRUE(f.covers(0, 512));
  EXPECT_FALSE(f.covers(512, 512));
  EXPECT_FALSE(f.covers(0, 1024));
  f.add(512, 512);  // fills the gap: one range [0, 1536)
  EXPECT_TRUE(f.covers(0, 1536));
  EXPECT_EQ(f.bytes_below(4096), 1536u);
  f.add(100, 10);  // inside
  EXPECT_EQ(f.bytes_below(4096), 1536u);
  EXPECT_EQ(f.bytes_below(1000), 1000u);
}

TEST(WriteFootprint, SaturatesInsteadOfWrapping) {
  constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();
  WriteFootprint f;
  f.add(kMax - 10, 4096);  // would wrap to a small number
  EXPECT_FALSE(f.covers(0, 512));
  EXPECT_TRUE(f.covers(kMax - 10, 10));
  EXPECT_FALSE(f.covers(kMax - 10, 4096));  // the query itself wraps: never covered
  f.add(0, 0);
  EXPECT_FALSE(f.covers(0, 1));
}

TEST(WriteFootprint, OfAProgramIsItsDiskWritesOnly) {
  FuzzProgram p;
  ActionSpec write;
  write.action.op = static_cast<std::uint32_t>(guest::FuzzOp::PutSqe);
  write.action.sqe.opcode = abi::kOpWriteFixed;
  write.action.sqe.off = 4096;
  write.action.sqe.len = 1024;
  ActionSpec read = write;
  read.action.sqe.opcode = abi::kOpReadFixed;
  read.action.sqe.off = 0;
  ActionSpec vectored = write;
  vectored.action.sqe.opcode = 2;  // WRITEV: len counts iovecs
  vectored.action.sqe.off = 1 << 20;
  vectored.action.sqe.len = 1;
  p.actions = {write, read, vectored};
  const WriteFootprint f = program_write_footprint(p);
  EXPECT_TRUE(f.covers(4096, 1024));
  EXPECT_FALSE(f.covers(0, 512));
  EXPECT_TRUE(f.covers(1 << 20, 1 << 20));  // from its offset on
}

}  // namespace
}  // namespace rf::fuzz
