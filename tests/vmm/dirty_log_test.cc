// The dirty log a device marks for a live migration (memory/dirty_log.h): the right bits, in the
// layout QEMU reads, never a byte outside the log whatever range it is asked to mark.
#include "memory/dirty_log.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <optional>

namespace rf {
namespace {

constexpr std::uint64_t kPage = DirtyLog::kPageBytes;

class DirtyLogTest : public ::testing::Test {
 protected:
  // A log of one page of bits (32768 guest pages); a mark outside it would fault, or show under
  // ASan.
  void SetUp() override {
    auto map = MmapRegion::map_anonymous(4096);
    ASSERT_TRUE(map);
    bits_ = map->bytes();
    log_.emplace(std::move(*map));
  }
  std::uint8_t byte(std::size_t i) const { return static_cast<std::uint8_t>(bits_[i]); }
  std::byte* bits_ = nullptr;
  std::optional<DirtyLog> log_;
};

TEST_F(DirtyLogTest, MarksEveryPageARangeTouchesInQemusLayout) {
  EXPECT_EQ(log_->mark(GuestAddress{0}, 1), 1u);  // page 0
  EXPECT_EQ(byte(0), 0x01);
  EXPECT_EQ(log_->mark(GuestAddress{9 * kPage + 100}, 2 * kPage), 3u);  // pages 9, 10 and 11
  EXPECT_EQ(byte(1), 0x0e);
  log_->mark(GuestAddress{8 * kPage - 1}, 2);  // the last byte of page 7 and the first of page 8
  EXPECT_EQ(byte(0), 0x81);
  EXPECT_EQ(byte(1), 0x0f);
  log_->mark(GuestAddress{20 * kPage}, 0);  // nothing
  EXPECT_EQ(byte(2), 0x00);
  EXPECT_EQ(log_->out_of_range(), 0u);
}

TEST_F(DirtyLogTest, ARangePastTheLogIsMarkedAsFarAsItReachesAndCounted) {
  const std::uint64_t pages = log_->pages();
  ASSERT_EQ(pages, 4096u * 8);
  EXPECT_EQ(log_->mark(GuestAddress{(pages - 1) * kPage}, 3 * kPage), 1u);  // the last page, then beyond
  EXPECT_EQ(byte(4095), 0x80);
  EXPECT_EQ(log_->out_of_range(), 1u);
  EXPECT_EQ(log_->mark(GuestAddress{pages * kPage * 1000}, kPage), 0u);  // wholly beyond
  EXPECT_EQ(log_->out_of_range(), 2u);
  // A range that would pass 2^64.
  log_->mark(GuestAddress{UINT64_MAX - 10}, UINT64_MAX);
  EXPECT_EQ(log_->out_of_range(), 3u);
  for (std::size_t i = 0; i + 1 < 4096; ++i) ASSERT_EQ(byte(i), 0) << "byte " << i;
}

}  // namespace
}  // namespace rf
