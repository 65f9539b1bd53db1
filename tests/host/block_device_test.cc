#include "host/block_device.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include <gtest/gtest.h>

#include "disk/loop_device.h"
#include "support/kernel_caps.h"
#include "support/test_disk.h"
#include "util/unique_fd.h"

namespace rf {
namespace {

TEST(BlockDeviceGeometry, ALoopDeviceHasTheImagesSize) {
  RF_REQUIRE(test::loop_device_feature());
  TempDir dir("ringfence-test");
  auto disk = Disk::open(test::make_image(dir, "disk.img", 3 << 20), {});
  ASSERT_TRUE(disk) << disk.error().message;
  const auto geometry = block_device_geometry(disk->fd());
  ASSERT_TRUE(geometry) << geometry.error().message;
  EXPECT_EQ(geometry->size_bytes, 3u << 20);
  EXPECT_GE(geometry->logical_block_size, 512u);
}

TEST(BlockDeviceGeometry, ARegularFileIsNotABlockDevice) {
  TempDir dir("ringfence-test");
  UniqueFd file(::open(test::make_image(dir, "plain.img", 4096).c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(file);
  const auto geometry = block_device_geometry(file.get());
  ASSERT_FALSE(geometry);
  EXPECT_EQ(geometry.error().sys_errno, ENOTTY);
  EXPECT_NE(geometry.error().message.find("BLKGETSIZE64"), std::string::npos) << geometry.error().message;
}

}  // namespace
}  // namespace rf
