#include "memory/guest_memory.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>

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
    auto m = GuestMemory::create(three_regions(), GetParam());
    ASSERT_TRUE(m) << m.error().message;
    memory_.emplace(std::move(*m));
  }
  const GuestMemory& mem() const { return *memory_; }
  std::optional<GuestMemory> memory_;
};

TranslateErrc translate_error(const GuestMemory& m, std::uint64_t gpa, std::uint64_t len,
                              DeviceAccess access = DeviceAccess::ReadsGuest) {
  auto r = m.translate(GuestAddress{gpa}, len, access);
  EXPECT_FALSE(r) << "gpa " << gpa << " len " << len << " translated";
  return r ? TranslateErrc::Empty : r.error().code;
}

TEST_P(GuestMemoryTest, TranslatesTheFirstAndLastByteOfARegion) {
  auto first = mem().translate(GuestAddress{0}, 1, DeviceAccess::WritesGuest);
  ASSERT_TRUE(first) << first.error().message;
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
  ASSERT_TRUE(n) << n.error().message;
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
  const auto buffers = mem().buffer_regions();
  ASSERT_EQ(buffers.size(), 2u);
  EXPECT_EQ(buffers[0].host, mem().regions()[0].host);
  EXPECT_EQ(buffers[1].host, mem().regions()[1].host);
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

TEST_P(GuestMemoryTest, KnowsWhichFixedBufferCoversARange) {
  // Pieces of two pages (the kernel's are 1 GiB; the split logic is the same).
  auto table = BufferTable::plan(mem().buffer_regions(), 2 * kPage);
  ASSERT_TRUE(table) << table.error().message;
  ASSERT_EQ(table->pieces().size(), 4u);
  memory_->set_buffer_table(std::move(*table));
  // Buffer indexes follow guest-physical order (the table itself is sorted by host address).
  for (const BufferPiece& piece : mem().buffer_table()->pieces()) {
    EXPECT_EQ(mem().piece_base(piece), GuestAddress{piece.index.value * 2 * kPage}) << "buffer " << piece.index.value;
  }

  auto b = mem().buffer_for(GuestAddress{6 * kPage + 16}, 64, DeviceAccess::WritesGuest);
  ASSERT_TRUE(b) << b.error().message;
  EXPECT_EQ(b->index.value, 3u);
  EXPECT_EQ(b->host, mem().regions()[1].host + 2 * kPage + 16);
  auto across = mem().buffer_for(GuestAddress{2 * kPage - 8}, 16, DeviceAccess::WritesGuest);
  ASSERT_FALSE(across);
  EXPECT_EQ(across.error().code, TranslateErrc::CrossesRegion);
  EXPECT_FALSE(mem().buffer_for(GuestAddress{16 * kPage}, 8, DeviceAccess::ReadsGuest));  // read-only: no buffer
}

INSTANTIATE_TEST_SUITE_P(Backings, GuestMemoryTest, ::testing::Values(MemoryBacking::Memfd, MemoryBacking::Anonymous),
                         [](const auto& p) { return p.param == MemoryBacking::Memfd ? "Memfd" : "Anonymous"; });

GuestMemoryErrc layout_error(std::vector<RegionLayout> layout) {
  auto r = GuestMemory::validate_layout(layout);
  EXPECT_FALSE(r);
  return r ? GuestMemoryErrc::Create : r.error().code;
}

TEST(GuestMemoryLayout, RefusesBadLayouts) {
  EXPECT_EQ(layout_error({}), GuestMemoryErrc::InvalidLayout);
  EXPECT_EQ(layout_error({{GuestAddress{0}, 0, false}}), GuestMemoryErrc::InvalidLayout);            // empty region
  EXPECT_EQ(layout_error({{GuestAddress{1}, kPage, false}}), GuestMemoryErrc::InvalidLayout);        // unaligned base
  EXPECT_EQ(layout_error({{GuestAddress{0}, kPage + 1, false}}), GuestMemoryErrc::InvalidLayout);    // unaligned size
  EXPECT_EQ(layout_error({{GuestAddress{kPage}, kPage, false}, {GuestAddress{0}, kPage, false}}),
            GuestMemoryErrc::InvalidLayout);  // unsorted
  EXPECT_EQ(layout_error({{GuestAddress{0}, 2 * kPage, false}, {GuestAddress{kPage}, kPage, false}}),
            GuestMemoryErrc::InvalidLayout);  // overlapping
  EXPECT_EQ(layout_error({{GuestAddress{UINT64_MAX - kPage + 1}, 2 * kPage, false}}),
            GuestMemoryErrc::InvalidLayout);  // base + size passes 2^64
  EXPECT_TRUE(GuestMemory::validate_layout(three_regions()));
}

TEST(GuestMemoryLayout, SealsTheMemfdAgainstShrinking) {
  const RegionLayout layout[] = {{GuestAddress{0}, kPage, false}};
  auto m = GuestMemory::create(layout, MemoryBacking::Memfd);
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_NE(::ftruncate(m->memfd(), 0), 0);
  EXPECT_EQ(errno, EPERM);
}

TEST(GuestAddressTest, MovesOnlyWithCheckedArithmetic) {
  EXPECT_EQ(GuestAddress{10}.plus(5), GuestAddress{15});
  EXPECT_FALSE(GuestAddress{UINT64_MAX}.plus(1));
  EXPECT_EQ(GuestAddress{15}.offset_from(GuestAddress{10}), 5u);
  EXPECT_FALSE(GuestAddress{5}.offset_from(GuestAddress{10}));
}

// Borrowed memory: RAM the VMM mapped itself (QEMU's RAM blocks, Firecracker's GuestMemoryMmap).
TEST(GuestMemoryBorrowTest, TranslatesIntoTheVmmsOwnMapping) {
  const std::size_t page = page_size();
  void* ram = ::mmap(nullptr, 4 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(ram, MAP_FAILED);
  auto* host = static_cast<std::byte*>(ram);
  const BorrowedRegion regions[] = {{{GuestAddress{0}, 2 * page, false}, host},
                                    {{GuestAddress{0x100000}, 2 * page, true}, host + 2 * page}};
  auto memory = GuestMemory::borrow(regions);
  ASSERT_TRUE(memory) << memory.error().message;
  EXPECT_EQ(memory->backing(), MemoryBacking::Borrowed);
  EXPECT_EQ(memory->memfd(), -1);
  EXPECT_EQ(memory->total_bytes(), 4 * page);
  const auto span = memory->translate(GuestAddress{0x100000 + 8}, 8, DeviceAccess::ReadsGuest);
  ASSERT_TRUE(span);
  EXPECT_EQ(span->host, host + 2 * page + 8);
  EXPECT_EQ(memory->translate(GuestAddress{0x100000}, 8, DeviceAccess::WritesGuest).error().code, TranslateErrc::ReadOnly);
  EXPECT_EQ(memory->buffer_regions().size(), 1u) << "the read-only region is never a fixed buffer";
  ::munmap(ram, 4 * page);
}

TEST(GuestMemoryBorrowTest, RefusesUnalignedUnmappedAndAliasedHostMemory) {
  const std::size_t page = page_size();
  void* ram = ::mmap(nullptr, 4 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(ram, MAP_FAILED);
  auto* host = static_cast<std::byte*>(ram);
  const RegionLayout one{GuestAddress{0}, page, false};
  const RegionLayout two{GuestAddress{0x10000}, page, true};

  const BorrowedRegion unaligned[] = {{one, host + 8}};
  EXPECT_EQ(GuestMemory::borrow(unaligned).error().code, GuestMemoryErrc::InvalidLayout);
  const BorrowedRegion null_host[] = {{one, nullptr}};
  EXPECT_EQ(GuestMemory::borrow(null_host).error().code, GuestMemoryErrc::InvalidLayout);

  // A read-only region that aliases a writable one could be written through it.
  const BorrowedRegion aliased[] = {{one, host}, {two, host}};
  const auto alias = GuestMemory::borrow(aliased);
  ASSERT_FALSE(alias);
  EXPECT_NE(alias.error().message.find("shares host memory"), std::string::npos) << alias.error().message;

  // The last page unmapped: the range is not all there.
  ASSERT_EQ(::munmap(host + 3 * page, page), 0);
  const BorrowedRegion unmapped[] = {{{GuestAddress{0}, 4 * page, false}, host}};
  const auto hole = GuestMemory::borrow(unmapped);
  ASSERT_FALSE(hole);
  EXPECT_EQ(hole.error().sys_errno, ENOMEM);
  EXPECT_NE(hole.error().message.find("not entirely mapped"), std::string::npos) << hole.error().message;
  ::munmap(ram, 3 * page);
}

}  // namespace
}  // namespace rf
