#include "disk/disk.h"

#include <filesystem>

#include <gtest/gtest.h>

#include "support/kernel_caps.h"
#include "support/test_disk.h"

namespace rf {
namespace {

TEST(Disk, ARegularImageGoesThroughALoopDeviceThatGoesAwayWithIt) {
  RF_REQUIRE(test::loop_device_feature());
  TempDir dir("ringfence-test");
  const std::string image = test::make_image(dir, "disk.img", 8 << 20);
  std::string loop_name;
  {
    auto disk = Disk::open(image, {});
    ASSERT_TRUE(disk) << disk.error().message;
    EXPECT_EQ(disk->kind(), DiskKind::LoopBackedFile);
    EXPECT_EQ(disk->size_bytes(), 8u << 20);
    EXPECT_GE(disk->logical_block_size(), 512u);
    const std::string text = disk->describe();
    const auto at = text.find("/dev/loop");
    ASSERT_NE(at, std::string::npos) << text;
    loop_name = text.substr(at + 5, text.find(' ', at) - at - 5);  // "loopN"
    EXPECT_TRUE(std::filesystem::exists("/sys/block/" + loop_name + "/loop/backing_file")) << loop_name;
  }
  // LO_FLAGS_AUTOCLEAR: closing the last reference detached it.
  bool detached = false;
  for (int i = 0; i < 200 && !detached; ++i) {
    detached = !std::filesystem::exists("/sys/block/" + loop_name + "/loop/backing_file");
    if (!detached) ::usleep(10'000);
  }
  EXPECT_TRUE(detached) << loop_name << " is still attached";
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
