#include "disk/disk.h"

#include "disk/loop_device.h"

#include <gtest/gtest.h>

#include "support/kernel_caps.h"
#include "support/test_disk.h"

namespace rf {
namespace {

TEST(Disk, ARegularImageGoesThroughALoopDeviceThatGoesAwayWithIt) {
  RF_REQUIRE(test::loop_device_feature());
  TempDir dir("ringfence-test");
  const std::string image = test::make_image(dir, "disk.img", 8 << 20);
  std::string loop;
  {
    auto disk = Disk::open(image, {});
    ASSERT_TRUE(disk) << disk.error().message;
    EXPECT_EQ(disk->kind(), DiskKind::LoopBackedFile);
    EXPECT_EQ(disk->size_bytes(), 8u << 20);
    EXPECT_GE(disk->logical_block_size(), 512u);
    loop = disk->loop_device();
    EXPECT_NE(disk->describe().find(loop), std::string::npos) << disk->describe();
    EXPECT_TRUE(loop_device_attached(loop)) << loop;
  }
  // LO_FLAGS_AUTOCLEAR: closing the last reference detached it.
  EXPECT_TRUE(wait_for_loop_detach(loop, std::chrono::seconds(2))) << loop << " is still attached";
}

TEST(Disk, ErrorsNameTheProblem) {
  TempDir dir("ringfence-test");
  auto missing = Disk::open(dir.path() + "/nope.img", {});
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, DiskErrc::Open);
  EXPECT_NE(missing.error().message.find("nope.img"), std::string::npos);

  auto directory = Disk::open(dir.path(), {});
  ASSERT_FALSE(directory);
  EXPECT_EQ(directory.error().code, DiskErrc::Unsupported);

  auto empty = Disk::open(test::make_image(dir, "empty.img", 0), {});
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().code, DiskErrc::InvalidImage);
  auto odd = Disk::open(test::make_image(dir, "odd.img", 1000), {});
  ASSERT_FALSE(odd);
  EXPECT_EQ(odd.error().code, DiskErrc::InvalidImage);
  EXPECT_NE(odd.error().message.find("multiple of 512"), std::string::npos) << odd.error().message;
}

// The image's lock lives with the loop device that reads it, and with every handle (a device's
// duplicate included): the image is free again only when all of them are gone.
TEST(Disk, AWritableImageIsLockedForAsLongAsAnythingUsesIt) {
  RF_REQUIRE(test::loop_device_feature());
  TempDir dir("ringfence-test");
  const std::string image = test::make_image(dir, "disk.img", 1 << 20);
  auto writer = Disk::open(image, {});
  ASSERT_TRUE(writer) << writer.error().message;
  auto handle = writer->duplicate();  // what a device takes
  ASSERT_TRUE(handle) << handle.error().message;
  for (bool read_only : {false, true}) {
    DiskOptions options;
    options.read_only = read_only;
    auto second = Disk::open(image, options);
    ASSERT_FALSE(second) << (read_only ? "read-only" : "writable");
    EXPECT_EQ(second.error().code, DiskErrc::Locked);
    EXPECT_EQ(second.error().sys_errno, EAGAIN);
  }
  *writer = std::move(*handle);  // the first handle closed; the duplicate still holds the loop device
  DiskOptions unbounded;
  unbounded.offset_bound = OffsetBound::None;
  EXPECT_FALSE(Disk::open(image, unbounded)) << "registered directly, the image is still the locked one";
  writer = unexpected(DiskError{});
  auto again = Disk::open(image, {});
  EXPECT_TRUE(again) << "free once every handle is gone: " << again.error().message;
}

TEST(Disk, AnUnboundedImageIsAnExplicitChoice) {
  TempDir dir("ringfence-test");
  DiskOptions options;
  options.offset_bound = OffsetBound::None;
  auto disk = Disk::open(test::make_image(dir, "disk.img", 1 << 20), options);
  ASSERT_TRUE(disk) << disk.error().message;
  EXPECT_EQ(disk->kind(), DiskKind::UnboundedFile);
  EXPECT_NE(disk->describe().find("NOT bounded"), std::string::npos) << disk->describe();
}

}  // namespace
}  // namespace rf
