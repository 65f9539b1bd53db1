// Several devices on one guest memory map at once, as a VMM with more than one disk controller
// (or hot-plug) has them: one device serves a guest doing verified I/O while other devices, of
// both modes, are created, used and destroyed beside it on the same map, and while a device is
// offered the running one's window. The running guest must see no failed or misdirected I/O,
// and its descriptor and rings must not be touched. CI runs this file under ThreadSanitizer.
#include <atomic>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "device_fixture.h"

namespace rf {
namespace {

constexpr std::uint64_t kRam = 16ull << 20;
constexpr std::uint64_t kPieceBytes = 1ull << 20;  // 16 fixed buffers: the window search has work to do
constexpr GuestAddress kSteadyWindow{0x10000};
constexpr GuestAddress kChurnWindow{0x200000};
constexpr std::uint64_t kSteadyData = 8ull << 20;  // the steady guest's buffers, clear of both windows
constexpr std::uint32_t kBlock = 4096;
constexpr int kChurnCycles = 24;

class DevicesOnOneMemoryTest : public ::testing::TestWithParam<abi::Mode> {
 protected:
  void SetUp() override {
    RF_REQUIRE(test::restrictions_feature());
    RF_REQUIRE(test::loop_device_feature());
    RF_REQUIRE(test::no_mmap_feature());
    RF_REQUIRE(test::no_sqarray_feature());
    const RegionLayout layout[] = {{GuestAddress{0}, kRam, false}};
    auto memory = GuestMemoryBuilder::create(layout, MemoryBacking::Anonymous, kPieceBytes);
    ASSERT_TRUE(memory) << memory.error().message;
    memory_ = std::move(*memory);
  }

  // A device of `mode` at `window` on the shared map, with a disk of its own.
  Result<std::unique_ptr<GuestDevice>, DeviceError> make_device(abi::Mode mode, GuestAddress window, int n) {
    auto disk = Disk::open(test::make_image(dir_, "churn" + std::to_string(n) + ".img", 1 << 20), {});
    if (!disk) return unexpected(DeviceError{DeviceErrc::InvalidConfig, 0, disk.error().message});
    std::vector<Disk> disks;
    disks.push_back(std::move(*disk));
    if (mode == abi::Mode::Passthrough) {
      PassthroughConfig config;
      config.device_window = window;
      config.queue_depth = 8;
      auto d = PassthroughDevice::create(memory_, std::move(disks), config);
      if (!d) return unexpected(std::move(d).error());
      return std::unique_ptr<GuestDevice>(std::move(*d));
    }
    MediatedConfig config;
    config.device_window = window;
    config.queue_depth = 8;
    auto d = MediatedDevice::create(memory_, std::move(disks), config);
    if (!d) return unexpected(std::move(d).error());
    return std::unique_ptr<GuestDevice>(std::move(*d));
  }

  TempDir dir_{"rf-shared-memory"};
  GuestMemoryMap memory_;
};

TEST_P(DevicesOnOneMemoryTest, DevicesComingAndGoingBesideARunningOneLeaveItsGuestUntouched) {
  test::TestDevice steady;
  test::DeviceSetup setup;
  setup.mode = GetParam();
  setup.memory = memory_;
  setup.passthrough.device_window = kSteadyWindow;
  setup.mediated.device_window = kSteadyWindow;
  ASSERT_NO_FATAL_FAILURE(steady.start(setup));
  const std::vector<std::byte> descriptor(steady.host(kSteadyWindow.value()),
                                          steady.host(kSteadyWindow.value()) + 4096);

  // Beside it: devices of both modes created, started, used by nobody, stopped and destroyed,
  // and each time a device offered the steady one's window.
  std::atomic<bool> churning{true};
  std::atomic<int> created{0};
  std::atomic<int> overlaps_refused{0};
  std::string churn_failure;
  std::thread churn([&] {
    for (int i = 0; i < kChurnCycles && churn_failure.empty(); ++i) {
      const abi::Mode mode = i % 2 == 0 ? abi::Mode::Passthrough : abi::Mode::Mediated;
      auto device = make_device(mode, kChurnWindow, i);
      if (!device) {
        churn_failure = "creating a device beside the running one: " + device.error().message;
        break;
      }
      if (auto started = (*device)->start(); !started) {
        churn_failure = "starting it: " + started.error().message;
        break;
      }
      ++created;
      auto onto_steady = make_device(mode, kSteadyWindow.unchecked_add(4096), 1000 + i);
      if (!onto_steady && onto_steady.error().code == DeviceErrc::InvalidConfig &&
          onto_steady.error().message.find("overlaps") != std::string::npos) {
        ++overlaps_refused;
      }
      const DeviceStopReport report = (*device)->stop(std::chrono::milliseconds(0));
      if (!report.released) churn_failure = "a churned device's ring was not released";
    }
    churning = false;
  });

  // The steady guest keeps the device busy with batches of 32 reads of a disk whose every block
  // holds its own byte, and checks each read's result and data, until the churn is over (and for
  // at least 64 batches): a read refused, or landing anywhere but its buffer, is a failure.
  constexpr std::uint64_t kDiskBlocks = 256;
  for (std::uint64_t b = 0; b < kDiskBlocks; ++b) {
    std::memset(steady.host(kSteadyData), static_cast<int>(b * 7 + 1), kBlock);
    ASSERT_EQ(steady.one({guest::Op::Write, 0, b * kBlock, kSteadyData, kBlock, b}).result, static_cast<std::int32_t>(kBlock));
  }
  constexpr std::uint32_t kBatch = 32;
  std::uint64_t rounds = 0;
  std::uint64_t reads = 0;
  std::uint64_t failed = 0;
  std::string first_failure;
  for (; churning.load() || rounds < 64; ++rounds) {
    for (std::uint32_t slot = 0; slot < kBatch; ++slot) {
      const std::uint64_t block = (rounds * kBatch + slot) * 37 % kDiskBlocks;
      std::memset(steady.host(kSteadyData + slot * kBlock), 0, kBlock);
      ASSERT_EQ(steady.driver_.queue({guest::Op::Read, 0, block * kBlock, kSteadyData + slot * kBlock, kBlock,
                                      block | std::uint64_t{slot} << 32}),
                guest::RequestStatus::Ok);
    }
    steady.driver_.submit();
    guest::Completion done[kBatch];
    for (std::uint32_t got = 0; got < kBatch;) got += steady.driver_.reap_wait(done + got, kBatch - got);
    for (const guest::Completion& c : done) {
      ++reads;
      const std::uint64_t block = c.tag & 0xffffffff;
      const std::uint64_t slot = c.tag >> 32;
      const unsigned char* data = steady.driver_.guest_pointer(kSteadyData + slot * kBlock, kBlock);
      const auto want = static_cast<unsigned char>(block * 7 + 1);
      if (c.result != static_cast<std::int32_t>(kBlock) || data[0] != want || data[kBlock - 1] != want) {
        if (failed++ == 0) {
          first_failure = fmt::format("round {}: block {} into slot {}: result {}, data {:#x}", rounds, block, slot,
                                      c.result, data[0]);
        }
      }
    }
  }
  churn.join();

  EXPECT_TRUE(churn_failure.empty()) << churn_failure;
  EXPECT_EQ(created.load(), kChurnCycles);
  EXPECT_EQ(overlaps_refused.load(), created.load()) << "every device offered the running one's window is refused";
  EXPECT_EQ(failed, 0u) << "of " << reads << " reads; first: " << first_failure;
  EXPECT_EQ(std::memcmp(descriptor.data(), steady.host(kSteadyWindow.value()), descriptor.size()), 0)
      << "nothing wrote the running device's descriptor";
  EXPECT_EQ(steady.device_->broken().reason, BrokenReason::None) << steady.device_->broken().detail;
  EXPECT_EQ(memory_->window_claims().count(), 1u) << "only the running device's window is still claimed";
}

TEST_P(DevicesOnOneMemoryTest, TwoDevicesRunIoAtOnceThroughOneMap) {
  // Two devices of this mode and one of the other on one map, each with its own guest thread.
  test::TestDevice devices[3];
  const abi::Mode other = GetParam() == abi::Mode::Passthrough ? abi::Mode::Mediated : abi::Mode::Passthrough;
  const abi::Mode modes[3] = {GetParam(), GetParam(), other};
  for (int i = 0; i < 3; ++i) {
    test::DeviceSetup setup;
    setup.mode = modes[i];
    setup.memory = memory_;
    const GuestAddress window{0x10000 + static_cast<std::uint64_t>(i) * 0x100000};
    setup.passthrough.device_window = window;
    setup.mediated.device_window = window;
    ASSERT_NO_FATAL_FAILURE(devices[i].start(setup));
  }
  std::atomic<std::uint64_t> failed{0};
  std::vector<std::thread> guests;
  for (int i = 0; i < 3; ++i) {
    guests.emplace_back([&, i] {
      test::TestDevice& d = devices[i];
      const std::uint64_t base = kSteadyData + static_cast<std::uint64_t>(i) * (1 << 20);
      for (std::uint64_t round = 0; round < 200; ++round) {
        const std::uint64_t gpa = base + (round % 128) * kBlock;
        unsigned char* buffer = d.driver_.guest_pointer(gpa, kBlock);
        std::memset(buffer, static_cast<int>(i * 31 + round), kBlock);
        guest::Completion c{};
        (void)d.driver_.queue({guest::Op::Write, 0, (round % 64) * kBlock, gpa, kBlock, round});
        d.driver_.submit();
        if (d.driver_.reap_wait(&c, 1) != 1 || c.result != static_cast<std::int32_t>(kBlock)) ++failed;
      }
    });
  }
  for (std::thread& t : guests) t.join();
  EXPECT_EQ(failed.load(), 0u);
  EXPECT_EQ(memory_->window_claims().count(), 3u);
}

INSTANTIATE_TEST_SUITE_P(BothModes, DevicesOnOneMemoryTest, ::testing::Values(abi::Mode::Passthrough, abi::Mode::Mediated),
                         test::mode_param_name);

}  // namespace
}  // namespace rf
