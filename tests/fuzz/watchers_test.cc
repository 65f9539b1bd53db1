#include "fuzz/live/watchers.h"

#include <unistd.h>

#include <cstring>

#include "memory/guest_memory_builder.h"

#include <gtest/gtest.h>

#include "support/kernel_caps.h"
#include "support/test_disk.h"

namespace rf::fuzz {
namespace {

TEST(CanaryPages, SeeAnyByteChangeAndSayWhichPage) {
  const RegionLayout layout{GuestAddress{0}, 1 << 20, false};
  auto memory = GuestMemoryBuilder::create({&layout, 1}, MemoryBacking::Memfd);
  ASSERT_TRUE(memory);
  auto canaries = CanaryPages::create(**memory);
  ASSERT_TRUE(canaries) << canaries.error();
  EXPECT_FALSE(canaries->check());
  // SAFETY: the canary page above guest RAM is ours, one page long.
  reinterpret_cast<unsigned char*>(canaries->above())[4095] ^= 1;
  const auto changed = canaries->check();
  ASSERT_TRUE(changed);
  EXPECT_NE(changed->find("above guest RAM"), std::string::npos) << *changed;
}

TEST(DecoyFile, SeesAWriteAndAGrowth) {
  TempDir dir("rf-decoy");
  auto decoy = DecoyFile::create(dir.path());
  ASSERT_TRUE(decoy) << decoy.error();
  EXPECT_FALSE(decoy->check());
  ASSERT_EQ(::pwrite(decoy->fd(), "x", 1, 100), 1);
  EXPECT_TRUE(decoy->check());
  auto other = DecoyFile::create(dir.path());  // the name is taken: never reuses a file
  EXPECT_FALSE(other);

  TempDir second("rf-decoy");
  auto fresh = DecoyFile::create(second.path());
  ASSERT_TRUE(fresh) << fresh.error();
  ASSERT_EQ(::ftruncate(fresh->fd(), 1 << 20), 0);
  const auto grown = fresh->check();
  ASSERT_TRUE(grown);
  EXPECT_NE(grown->find("size"), std::string::npos) << *grown;
}

TEST(ShadowDisk, AChangeOutsideTheFootprintIsAViolationAndInsideIsNot) {
  RF_REQUIRE(test::loop_device_feature());
  TempDir dir("rf-shadow");
  const std::string image = test::make_image(dir, "disk.img", 1 << 20);
  DiskOptions options;
  options.direct_io = test::takes_direct_io(image);
  auto disk = Disk::open(image, options);
  ASSERT_TRUE(disk) << disk.error().message;
  auto shadow = ShadowDisk::create(*disk);
  ASSERT_TRUE(shadow) << shadow.error();
  auto block = MmapRegion::map_anonymous(4096);
  ASSERT_TRUE(block);
  std::memset(block->data(), 0x5a, 4096);
  ASSERT_EQ(::pwrite(disk->fd(), block->data(), 4096, 8192), 4096);

  WriteFootprint covering;
  covering.add(8192, 4096);
  std::uint64_t changed = 0;
  EXPECT_FALSE(shadow->check(covering, changed));
  EXPECT_EQ(changed, 4096u);

  ASSERT_EQ(::pwrite(disk->fd(), block->data(), 4096, 65536), 4096);
  const auto outside = shadow->check(covering, changed);
  ASSERT_TRUE(outside);
  EXPECT_NE(outside->find("0x10000"), std::string::npos) << *outside;
  // The new contents are the reference from now on.
  EXPECT_FALSE(shadow->check(WriteFootprint{}, changed));
  EXPECT_EQ(changed, 0u);
}

}  // namespace
}  // namespace rf::fuzz
