// A device (passthrough or mediated) over a loop-backed image and anonymous guest RAM, with the
// reference guest driver attached in this process: the same driver code the guest process
// runs, its platform callbacks doing what the process guest's do (write the kick eventfd, read
// the notification eventfd).
#pragma once

#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "guest/driver.h"
#include "mediated/mediated_device.h"
#include "passthrough/passthrough_device.h"
#include "support/kernel_caps.h"
#include "support/test_disk.h"
#include "util/address.h"

namespace rf::test {

inline constexpr std::uint64_t kFixtureRam = 16ull << 20;
inline constexpr std::uint64_t kFixtureDisk = 4ull << 20;
inline constexpr std::uint64_t kScratch = 8ull << 20;  // a GPA well past the device window

struct DeviceSetup {
  abi::Mode mode = abi::Mode::Passthrough;
  DiskOptions disk;
  PassthroughConfig passthrough;
  MediatedConfig mediated;
  // Region 0 must start at GPA 0 (the in-process driver sees guest memory through it).
  std::vector<RegionLayout> regions{{GuestAddress{0}, kFixtureRam, false}};
  // A map to share with other devices instead of one made from `regions`.
  GuestMemoryMap memory;
  bool start_device = true;  // false: the device stays Created (the driver still attaches)
};

inline void fixture_kick(void* device) {
  const std::uint64_t one = 1;
  ASSERT_EQ(::write(static_cast<GuestDevice*>(device)->kick_fd(), &one, 8), 8);
}
inline void fixture_wait(void* device) {
  std::uint64_t count = 0;
  ASSERT_EQ(::read(static_cast<GuestDevice*>(device)->notify_fd(), &count, 8), 8);
}

// One device and its in-process driver. Tests use it through DeviceFixture, or directly when
// they need more than one device.
class TestDevice {
 public:
  // Builds the device and attaches driver_ (callers wrap it in ASSERT_NO_FATAL_FAILURE).
  void start(const DeviceSetup& setup = {}) {
    image_ = make_image(dir_, "disk.img", kFixtureDisk);
    ASSERT_FALSE(image_.empty());
    auto disk = Disk::open(image_, setup.disk);
    ASSERT_TRUE(disk) << disk.error().message;
    if (setup.memory) {
      memory_ = setup.memory;
    } else {
      auto memory = GuestMemoryBuilder::create(setup.regions, MemoryBacking::Anonymous);
      ASSERT_TRUE(memory) << memory.error().message;
      memory_ = std::move(*memory);
    }
    std::vector<Disk> disks;
    disks.push_back(std::move(*disk));
    if (setup.mode == abi::Mode::Passthrough) {
      auto device = PassthroughDevice::create(memory_, std::move(disks), setup.passthrough);
      ASSERT_TRUE(device) << device.error().message;
      passthrough_ = device->get();
      device_ = std::move(*device);
    } else {
      auto device = MediatedDevice::create(memory_, std::move(disks), setup.mediated);
      ASSERT_TRUE(device) << device.error().message;
      mediated_ = device->get();
      device_ = std::move(*device);
    }
    if (setup.start_device) {
      ASSERT_TRUE(device_->start()) << "starting the device";
    }
    const GuestRegion& last = memory_->regions().back();
    const guest::Platform platform{device_.get(), fixture_kick, fixture_wait, address_of(memory_->regions()[0].host),
                                   last.base.value() + last.bytes};
    ASSERT_EQ(driver_.attach(platform, device_->descriptor_address().value()), guest::AttachStatus::Ok)
        << abi::decode_status_name(driver_.decode_status());
  }

  // The VMM's pointer to guest RAM at `gpa` (region 0).
  std::byte* host(std::uint64_t gpa) { return memory_->regions()[0].host + gpa; }
  // What an SQE carries for data at `gpa`: the host address in passthrough, the GPA in mediated.
  std::uint64_t sqe_addr(std::uint64_t gpa) {
    return device_->mode() == abi::Mode::Passthrough ? address_of(host(gpa)) : gpa;
  }

  // Queues, submits and waits for one request.
  guest::Completion one(const guest::Request& r) {
    EXPECT_EQ(driver_.queue(r), guest::RequestStatus::Ok);
    EXPECT_EQ(driver_.submit(), 1u);
    guest::Completion c;
    EXPECT_EQ(driver_.reap_wait(&c, 1), 1u);
    return c;
  }
  guest::Completion one_raw(const abi::GuestSqe& sqe) {
    EXPECT_EQ(driver_.queue_raw(sqe), guest::RequestStatus::Ok);
    driver_.submit();
    guest::Completion c;
    EXPECT_EQ(driver_.reap_wait(&c, 1), 1u);
    return c;
  }
  // A raw block SQE on disk 0, FIXED_FILE, 4 KiB.
  static abi::GuestSqe raw(std::uint8_t opcode, std::uint64_t addr, std::uint64_t offset) {
    abi::GuestSqe sqe{};
    sqe.opcode = opcode;
    sqe.flags = abi::kSqeFixedFile;
    sqe.addr = addr;
    sqe.off = offset;
    sqe.len = 4096;
    sqe.user_data = 99;
    return sqe;
  }

  TempDir dir_{"ringfence-test"};
  std::string image_;
  GuestMemoryMap memory_;
  std::unique_ptr<GuestDevice> device_;
  PassthroughDevice* passthrough_ = nullptr;
  MediatedDevice* mediated_ = nullptr;
  guest::Driver driver_;
};

// Names a test parameterised by mode "Passthrough" or "Mediated".
inline std::string mode_param_name(const ::testing::TestParamInfo<abi::Mode>& info) {
  return info.param == abi::Mode::Passthrough ? "Passthrough" : "Mediated";
}

class DeviceFixture : public ::testing::Test, public TestDevice {
 protected:
  // Skips when the machine lacks what `mode` needs; fails when probing broke.
  static void require(abi::Mode mode) {
    if (mode == abi::Mode::Passthrough) {
      RF_REQUIRE(no_mmap_feature());
      RF_REQUIRE(no_sqarray_feature());
    }
    RF_REQUIRE(restrictions_feature());
    RF_REQUIRE(loop_device_feature());
  }
};

}  // namespace rf::test
