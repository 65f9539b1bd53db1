#include "memory/guest_memory.h"

#include "memory/guest_memory_builder.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "util/address.h"

namespace rf {
namespace {

const std::uint64_t kPage = page_size();

// Two adjacent regions, a gap, then a read-only region:
//   [0, 4 pages) [4 pages, 8 pages)   gap   [16 pages, 18 pages) read-only
std::vector<RegionLayout> three_regions() {
  return {{GuestAddress{0}, 4 * kPage, false},
          {GuestAddress{4 * kPage}, 4 * kPage, false},
          {GuestAddress{16 * kPage}, 2 * kPage, true}};
}

class GuestMemoryTest : public ::testing::TestWithParam<MemoryBacking> {
 protected:
  void SetUp() override {
    // Fixed buffers of two pages (the kernel's are 1 GiB; the split logic is the same).
    auto m = GuestMemoryBuilder::create(three_regions(), GetParam(), 2 * kPage);
    ASSERT_TRUE(m) << m.error().message;
    memory_ = std::move(*m);
  }
  const GuestMemory& mem() const { return *memory_; }
  GuestMemoryMap memory_;
};

TranslateErrc translate_error(const GuestMemory& m, std::uint64_t gpa, std::uint64_t len,
                              DeviceAccess access = DeviceAccess::ReadsGuest) {
  auto r = m.translate(GuestAddress{gpa}, len, access);
  EXPECT_FALSE(r) << "gpa " << gpa << " len " << len << " translated";
  return r ? TranslateErrc::Empty : r.error().code;
}

TEST_P(GuestMemoryTest, TranslatesTheFirstAndLastByteOfARegion) {
  auto first = mem().translate(GuestAddress{0}, 1, DeviceAccess::WritesGuest);
  ASSERT_TRUE(first) << first.error().describe();
  EXPECT_EQ(first->host, mem().regions()[0].host);
  EXPECT_EQ(first->region, 0u);
  auto last = mem().translate(GuestAddress{4 * kPage - 1}, 1, DeviceAccess::WritesGuest);
  ASSERT_TRUE(last);
  EXPECT_EQ(last->host, mem().regions()[0].host + 4 * kPage - 1);
  auto whole = mem().translate(GuestAddress{4 * kPage}, 4 * kPage, DeviceAccess::WritesGuest);
  ASSERT_TRUE(whole);
  EXPECT_EQ(whole->region, 1u);
  EXPECT_EQ(whole->bytes, 4 * kPage);
}

TEST_P(GuestMemoryTest, RefusesOnePastTheEndAndGaps) {
  EXPECT_EQ(translate_error(mem(), 8 * kPage, 1), TranslateErrc::Unmapped);       // one past region 1
  EXPECT_EQ(translate_error(mem(), 10 * kPage, 16), TranslateErrc::Unmapped);     // inside the gap
  EXPECT_EQ(translate_error(mem(), 18 * kPage, 1), TranslateErrc::Unmapped);      // one past the last region
  EXPECT_EQ(translate_error(mem(), 8 * kPage - 8, 16), TranslateErrc::Unmapped);  // runs into the gap
  EXPECT_EQ(translate_error(mem(), 16 * kPage - 1, 2), TranslateErrc::Unmapped);  // starts in the gap
  // Starts in region 1 and ends in region 2, across the gap: some byte is in no region, so it
  // is Unmapped, not CrossesRegion (found by tests/fuzzers/guest_memory_fuzzer.cc).
  EXPECT_EQ(translate_error(mem(), 8 * kPage - 8, 8 * kPage + 16), TranslateErrc::Unmapped);
  // Region 0 through region 1 and on into the gap: Unmapped as well.
  EXPECT_EQ(translate_error(mem(), 4 * kPage - 8, 4 * kPage + 16), TranslateErrc::Unmapped);
  // Region 0 through all of region 1: every byte mapped, so CrossesRegion.
  EXPECT_EQ(translate_error(mem(), 4 * kPage - 8, 4 * kPage + 8), TranslateErrc::CrossesRegion);
}

TEST_P(GuestMemoryTest, RefusesASpanAcrossRegionsButSplitsItExplicitly) {
  EXPECT_EQ(translate_error(mem(), 4 * kPage - 8, 16), TranslateErrc::CrossesRegion);
  HostSpan pieces[4];
  auto n = mem().split(GuestAddress{4 * kPage - 8}, 16, DeviceAccess::WritesGuest, pieces);
  ASSERT_TRUE(n) << n.error().describe();
  ASSERT_EQ(*n, 2u);
  EXPECT_EQ(pieces[0].host, mem().regions()[0].host + 4 * kPage - 8);
  EXPECT_EQ(pieces[0].bytes, 8u);
  EXPECT_EQ(pieces[1].host, mem().regions()[1].host);
  EXPECT_EQ(pieces[1].bytes, 8u);
  // A split that reaches the gap is still refused, and a too-small output is an error.
  EXPECT_FALSE(mem().split(GuestAddress{4 * kPage - 8}, 4 * kPage + 16, DeviceAccess::ReadsGuest, pieces));
  auto tight = mem().split(GuestAddress{4 * kPage - 8}, 16, DeviceAccess::ReadsGuest, std::span(pieces, 1));
  ASSERT_FALSE(tight);
  EXPECT_EQ(tight.error().code, TranslateErrc::TooManyPieces);
}

TEST_P(GuestMemoryTest, RefusesOverflowAndZeroLength) {
  EXPECT_EQ(translate_error(mem(), UINT64_MAX, 2), TranslateErrc::Overflow);
  EXPECT_EQ(translate_error(mem(), 2, UINT64_MAX), TranslateErrc::Overflow);
  EXPECT_EQ(translate_error(mem(), 0, 0), TranslateErrc::Empty);
  HostSpan piece;
  auto r = mem().split(GuestAddress{UINT64_MAX - 1}, 4, DeviceAccess::ReadsGuest, std::span(&piece, 1));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, TranslateErrc::Overflow);
}

TEST_P(GuestMemoryTest, ReadOnlyRegionsCanBeReadButNotWrittenByTheDevice) {
  EXPECT_TRUE(mem().translate(GuestAddress{16 * kPage}, kPage, DeviceAccess::ReadsGuest));
  EXPECT_EQ(translate_error(mem(), 16 * kPage, kPage, DeviceAccess::WritesGuest), TranslateErrc::ReadOnly);
  // ... and are never registered as fixed buffers.
  for (const BufferWindow& w : mem().buffer_windows()) EXPECT_LT(w.base, GuestAddress{16 * kPage});
  auto refused = mem().buffer_for(GuestAddress{16 * kPage}, 8, DeviceAccess::ReadsGuest);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, TranslateErrc::NotABuffer);
}

TEST_P(GuestMemoryTest, WritesThroughATranslationLandInTheBackingMemory) {
  auto span = mem().translate(GuestAddress{5 * kPage + 3}, 4, DeviceAccess::WritesGuest);
  ASSERT_TRUE(span);
  std::memcpy(span->host, "ring", 4);
  if (GetParam() == MemoryBacking::Memfd) {
    // Region 1 starts at memfd offset 4 pages.
    char back[4] = {};
    ASSERT_EQ(::pread(mem().memfd(), back, 4, static_cast<off_t>(5 * kPage + 3)), 4);
    EXPECT_EQ(std::memcmp(back, "ring", 4), 0);
    EXPECT_EQ(mem().regions()[1].memfd_offset, 4 * kPage);
  } else {
    EXPECT_EQ(mem().memfd(), -1);
    EXPECT_EQ(std::memcmp(mem().regions()[1].host + kPage + 3, "ring", 4), 0);
  }
}

TEST_P(GuestMemoryTest, ItsFixedBufferPlanIsFixedWhenTheMapIsBuilt) {
  // Two writable regions of four pages in pieces of two: four buffers, the read-only region none.
  ASSERT_EQ(mem().buffer_plan().pieces().size(), 4u);
  ASSERT_EQ(mem().buffer_windows().size(), 4u);
  // Buffer indexes follow guest-physical order (the plan itself is sorted by host address).
  for (std::size_t i = 0; i < mem().buffer_windows().size(); ++i) {
    const BufferWindow& w = mem().buffer_windows()[i];
    EXPECT_EQ(w.index.value, i);
    EXPECT_EQ(w.base, GuestAddress{i * 2 * kPage}) << "buffer " << i;
    EXPECT_EQ(w.bytes, 2 * kPage);
    const auto span = mem().translate(w.base, w.bytes, DeviceAccess::WritesGuest);
    ASSERT_TRUE(span);
    EXPECT_EQ(w.host, span->host) << "a window's host memory is its guest range's";
  }
  for (const BufferPiece& piece : mem().buffer_plan().pieces()) {
    EXPECT_EQ(piece.host_base, address_of(mem().buffer_windows()[piece.index.value].host));
  }
}

TEST_P(GuestMemoryTest, KnowsWhichFixedBufferCoversARange) {
  auto b = mem().buffer_for(GuestAddress{6 * kPage + 16}, 64, DeviceAccess::WritesGuest);
  ASSERT_TRUE(b) << b.error().describe();
  EXPECT_EQ(b->index.value, 3u);
  EXPECT_EQ(b->host, mem().regions()[1].host + 2 * kPage + 16);
  auto across = mem().buffer_for(GuestAddress{2 * kPage - 8}, 16, DeviceAccess::WritesGuest);
  ASSERT_FALSE(across);
  EXPECT_EQ(across.error().code, TranslateErrc::CrossesBuffer) << "two pieces of one region";
  auto regions = mem().buffer_for(GuestAddress{4 * kPage - 8}, 16, DeviceAccess::WritesGuest);
  ASSERT_FALSE(regions);
  EXPECT_EQ(regions.error().code, TranslateErrc::CrossesRegion) << "two regions";
  EXPECT_EQ(mem().buffer_for(GuestAddress{10 * kPage}, 8, DeviceAccess::ReadsGuest).error().code, TranslateErrc::Unmapped);
  EXPECT_EQ(mem().buffer_for(GuestAddress{0}, 0, DeviceAccess::ReadsGuest).error().code, TranslateErrc::Empty);
}

TEST_P(GuestMemoryTest, ARefusalIsACodeAndItsValuesUntilItIsShown) {
  auto r = mem().translate(GuestAddress{10 * kPage}, 16, DeviceAccess::ReadsGuest);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, TranslateErrc::Unmapped);
  EXPECT_EQ(r.error().gpa, GuestAddress{10 * kPage});
  EXPECT_EQ(r.error().bytes, 16u);
  const std::string shown = r.error().describe();
  EXPECT_NE(shown.find(fmt::format("{:#x}+0x10", 10 * kPage)), std::string::npos) << shown;
  EXPECT_NE(shown.find("gap"), std::string::npos) << shown;
}

TEST(GuestAddressTest, MovesOnlyWithCheckedArithmeticOrAnExplicitlyUncheckedForm) {
  EXPECT_EQ(GuestAddress{10}.checked_add(5), GuestAddress{15});
  EXPECT_FALSE(GuestAddress{UINT64_MAX}.checked_add(1));
  EXPECT_EQ(GuestAddress{UINT64_MAX - 1}.checked_add(1), GuestAddress{UINT64_MAX});
  EXPECT_EQ(GuestAddress{15}.checked_offset_from(GuestAddress{10}), 5u);
  EXPECT_FALSE(GuestAddress{5}.checked_offset_from(GuestAddress{10}));
  EXPECT_EQ(GuestAddress{10}.unchecked_add(5), GuestAddress{15});
  EXPECT_EQ(GuestAddress{15}.unchecked_offset_from(GuestAddress{10}), 5u);
}

INSTANTIATE_TEST_SUITE_P(Backings, GuestMemoryTest, ::testing::Values(MemoryBacking::Memfd, MemoryBacking::Anonymous),
                         [](const auto& p) { return p.param == MemoryBacking::Memfd ? "Memfd" : "Anonymous"; });

}  // namespace
}  // namespace rf
