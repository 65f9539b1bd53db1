#include "memory/guest_memory_builder.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <vector>

#include <gtest/gtest.h>

namespace rf {
namespace {

const std::uint64_t kPage = page_size();

GuestMemoryErrc layout_error(std::vector<RegionLayout> layout) {
  auto r = GuestMemoryBuilder::validate_layout(layout);
  EXPECT_FALSE(r);
  return r ? GuestMemoryErrc::Create : r.error().code;
}

TEST(GuestMemoryBuilderTest, RefusesBadLayouts) {
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
  // Adjacent regions, a gap, a read-only one: fine.
  const std::vector<RegionLayout> good{{GuestAddress{0}, kPage, false}, {GuestAddress{kPage}, kPage, false},
                                       {GuestAddress{8 * kPage}, kPage, true}};
  EXPECT_TRUE(GuestMemoryBuilder::validate_layout(good));
}

TEST(GuestMemoryBuilderTest, SealsTheMemfdAgainstShrinking) {
  const RegionLayout layout[] = {{GuestAddress{0}, kPage, false}};
  auto m = GuestMemoryBuilder::create(layout, MemoryBacking::Memfd);
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_NE(::ftruncate((*m)->memfd(), 0), 0);
  EXPECT_EQ(errno, EPERM);
}

// Borrowed memory: RAM the VMM mapped itself (QEMU's RAM blocks, Firecracker's GuestMemoryMmap).
TEST(GuestMemoryBorrowTest, TranslatesIntoTheVmmsOwnMapping) {
  const std::size_t page = page_size();
  void* ram = ::mmap(nullptr, 4 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(ram, MAP_FAILED);
  auto* host = static_cast<std::byte*>(ram);
  const BorrowedRegion regions[] = {{{GuestAddress{0}, 2 * page, false}, host},
                                    {{GuestAddress{0x100000}, 2 * page, true}, host + 2 * page}};
  auto memory = GuestMemoryBuilder::borrow(regions);
  ASSERT_TRUE(memory) << memory.error().message;
  const GuestMemory& m = **memory;
  EXPECT_EQ(m.backing(), MemoryBacking::Borrowed);
  EXPECT_EQ(m.memfd(), -1);
  EXPECT_EQ(m.total_bytes(), 4 * page);
  const auto span = m.translate(GuestAddress{0x100000 + 8}, 8, DeviceAccess::ReadsGuest);
  ASSERT_TRUE(span);
  EXPECT_EQ(span->host, host + 2 * page + 8);
  EXPECT_EQ(m.translate(GuestAddress{0x100000}, 8, DeviceAccess::WritesGuest).error().code, TranslateErrc::ReadOnly);
  ASSERT_EQ(m.buffer_windows().size(), 1u) << "the read-only region is never a fixed buffer";
  EXPECT_EQ(m.buffer_windows()[0].host, host);
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
  EXPECT_EQ(GuestMemoryBuilder::borrow(unaligned).error().code, GuestMemoryErrc::InvalidLayout);
  const BorrowedRegion null_host[] = {{one, nullptr}};
  EXPECT_EQ(GuestMemoryBuilder::borrow(null_host).error().code, GuestMemoryErrc::InvalidLayout);

  // A read-only region that aliases a writable one could be written through it.
  const BorrowedRegion aliased[] = {{one, host}, {two, host}};
  const auto alias = GuestMemoryBuilder::borrow(aliased);
  ASSERT_FALSE(alias);
  EXPECT_NE(alias.error().message.find("shares host memory"), std::string::npos) << alias.error().message;

  // The last page unmapped: the range is not all there.
  ASSERT_EQ(::munmap(host + 3 * page, page), 0);
  const BorrowedRegion unmapped[] = {{{GuestAddress{0}, 4 * page, false}, host}};
  const auto hole = GuestMemoryBuilder::borrow(unmapped);
  ASSERT_FALSE(hole);
  EXPECT_EQ(hole.error().sys_errno, ENOMEM);
  EXPECT_NE(hole.error().message.find("not entirely mapped"), std::string::npos) << hole.error().message;
  ::munmap(ram, 3 * page);
}

TEST(GuestMemoryBuilderTest, AMapWithOnlyReadOnlyRegionsHasNoBuffers) {
  const RegionLayout layout[] = {{GuestAddress{0}, kPage, true}};
  auto m = GuestMemoryBuilder::create(layout, MemoryBacking::Anonymous);
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_TRUE((*m)->buffer_plan().pieces().empty());
  EXPECT_TRUE((*m)->buffer_windows().empty());
}

TEST(GuestMemoryBuilderTest, RefusesAMapThatNeedsMoreFixedBuffersThanTheKernelTakes) {
  // One page per buffer: 16385 pages need one buffer more than the kernel's 16384 (no memory is
  // touched: anonymous mappings are reserved, not populated).
  const RegionLayout layout[] = {{GuestAddress{0}, (kMaxFixedBuffers + 1) * kPage, false}};
  auto m = GuestMemoryBuilder::create(layout, MemoryBacking::Anonymous, kPage);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code, GuestMemoryErrc::InvalidLayout);
  EXPECT_NE(m.error().message.find("16384"), std::string::npos) << m.error().message;
}

TEST(GuestMemoryBuilderTest, BorrowedIsNotSomethingItCreates) {
  const RegionLayout layout[] = {{GuestAddress{0}, kPage, false}};
  EXPECT_FALSE(GuestMemoryBuilder::create(layout, MemoryBacking::Borrowed));
}

TEST(GuestMemoryAdoptTest, TheMapOwnsItsMappingsAndUnmapsThemWithTheLastHolder) {
  const std::size_t before = MmapRegion::live_count();
  std::vector<MmapRegion> mappings;
  for (int i = 0; i < 2; ++i) {
    auto m = MmapRegion::map_anonymous(1 << 20);
    ASSERT_TRUE(m);
    mappings.push_back(std::move(*m));
  }
  std::byte* const second = mappings[1].bytes();
  const RegionLayout layout[] = {{GuestAddress{0}, 1 << 20, false}, {GuestAddress{4 << 20}, 1 << 20, false}};
  auto map = GuestMemoryBuilder::adopt(layout, std::move(mappings));
  ASSERT_TRUE(map) << map.error().message;
  EXPECT_EQ(MmapRegion::live_count(), before + 2);
  auto span = (*map)->translate(GuestAddress{(4 << 20) + 16}, 8, DeviceAccess::WritesGuest);
  ASSERT_TRUE(span);
  EXPECT_EQ(span->host, second + 16);
  map->reset();
  EXPECT_EQ(MmapRegion::live_count(), before) << "the mappings went with the map";
}

TEST(GuestMemoryAdoptTest, RefusesAMappingPerRegionMismatch) {
  auto m = MmapRegion::map_anonymous(1 << 20);
  ASSERT_TRUE(m);
  std::vector<MmapRegion> one;
  one.push_back(std::move(*m));
  const RegionLayout two[] = {{GuestAddress{0}, 1 << 20, false}, {GuestAddress{4 << 20}, 1 << 20, false}};
  EXPECT_FALSE(GuestMemoryBuilder::adopt(two, std::move(one)));
  auto small = MmapRegion::map_anonymous(4096);
  ASSERT_TRUE(small);
  std::vector<MmapRegion> short_one;
  short_one.push_back(std::move(*small));
  const RegionLayout big[] = {{GuestAddress{0}, 1 << 20, false}};
  auto map = GuestMemoryBuilder::adopt(big, std::move(short_one));
  ASSERT_FALSE(map);
  EXPECT_NE(map.error().message.find("larger than its mapping"), std::string::npos) << map.error().message;
}

TEST(GuestMemoryTest, BufferWindowAtFindsTheWindowHoldingAnAddress) {
  const RegionLayout layout[] = {{GuestAddress{0}, 2 << 20, false}, {GuestAddress{8 << 20}, 1 << 20, false}};
  auto map = GuestMemoryBuilder::create(layout, MemoryBacking::Anonymous, 1 << 20);
  ASSERT_TRUE(map);
  const GuestMemory& m = **map;
  ASSERT_NE(m.buffer_window_at(GuestAddress{0}), nullptr);
  EXPECT_EQ(m.buffer_window_at(GuestAddress{(1 << 20) - 1})->base.value(), 0u);
  EXPECT_EQ(m.buffer_window_at(GuestAddress{1 << 20})->base.value(), 1u << 20) << "the next 1 MiB piece";
  EXPECT_EQ(m.buffer_window_at(GuestAddress{2 << 20}), nullptr) << "the hole";
  EXPECT_EQ(m.buffer_window_at(GuestAddress{(9 << 20) - 1})->base.value(), 8u << 20);
  EXPECT_EQ(m.buffer_window_at(GuestAddress{9 << 20}), nullptr) << "past the end";
  EXPECT_EQ(m.buffer_window_at(GuestAddress{~std::uint64_t{0}}), nullptr);
}

}  // namespace
}  // namespace rf
