#include "util/mmap_region.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

#include <gtest/gtest.h>

#include "util/unique_fd.h"

namespace rf {
namespace {

bool is_mapped(void* addr) {
  unsigned char vec = 0;
  return ::mincore(addr, page_size(), &vec) == 0;
}

TEST(MmapRegionTest, AnonymousIsZeroedAndUnmappedOnDestruction) {
  void* addr = nullptr;
  {
    auto region = MmapRegion::map_anonymous(2 * page_size());
    ASSERT_TRUE(region) << region.error().message;
    addr = region->data();
    EXPECT_EQ(region->size(), 2 * page_size());
    EXPECT_EQ(region->bytes()[page_size() + 7], std::byte{0});
    EXPECT_TRUE(is_mapped(addr));
  }
  EXPECT_FALSE(is_mapped(addr));
}

TEST(MmapRegionTest, SharedFdMappingsSeeTheSameBytes) {
  UniqueFd fd(::memfd_create("mmap-test", MFD_CLOEXEC));
  ASSERT_TRUE(fd);
  ASSERT_EQ(::ftruncate(fd.get(), static_cast<off_t>(page_size())), 0);
  auto a = MmapRegion::map_fd(fd.get(), 0, page_size(), PROT_READ | PROT_WRITE);
  auto b = MmapRegion::map_fd(fd.get(), 0, page_size(), PROT_READ);
  ASSERT_TRUE(a && b);
  std::memcpy(a->data(), "ringfence", 9);
  EXPECT_EQ(std::memcmp(b->data(), "ringfence", 9), 0);
}

TEST(MmapRegionTest, RefusesMapFixedZeroLengthAndMisalignedOffset) {
  UniqueFd fd(::memfd_create("mmap-test", MFD_CLOEXEC));
  ASSERT_EQ(::ftruncate(fd.get(), static_cast<off_t>(4 * page_size())), 0);
  auto fixed = MmapRegion::map_fd(fd.get(), 0, page_size(), PROT_READ, MAP_SHARED | MAP_FIXED);
  ASSERT_FALSE(fixed);
  EXPECT_EQ(fixed.error().code, MmapErrc::InvalidArgument);
  EXPECT_NE(fixed.error().message.find("MAP_FIXED"), std::string::npos);
  EXPECT_FALSE(MmapRegion::map_anonymous(0));
  auto misaligned = MmapRegion::map_fd(fd.get(), 100, page_size(), PROT_READ);
  ASSERT_FALSE(misaligned);
  EXPECT_NE(misaligned.error().message.find("not a multiple of the page size"), std::string::npos);
}

TEST(MmapRegionTest, MmapFailureCarriesErrno) {
  auto bad = MmapRegion::map_fd(-1, 0, page_size(), PROT_READ);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, MmapErrc::Mmap);
  EXPECT_EQ(bad.error().sys_errno, EBADF);
}

TEST(MmapRegionTest, MoveLeavesOneOwner) {
  auto region = MmapRegion::map_anonymous(page_size());
  ASSERT_TRUE(region);
  void* addr = region->data();
  MmapRegion owner = std::move(*region);
  EXPECT_FALSE(*region);  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(owner.data(), addr);
  owner.reset();
  EXPECT_FALSE(is_mapped(addr));
}

}  // namespace
}  // namespace rf
