// The scale section's engine on a small target: set-up times add up and are each measured,
// registration time is reported per GiB, and several guests run at once on their own rings, with
// or without one shared SQPOLL thread.
#include "engine/scale.h"

#include <gtest/gtest.h>

#include "engine/guest_job.h"
#include "support/kernel_caps.h"
#include "support/test_disk.h"
#include "util/cycle_counter.h"
#include "util/temp_dir.h"

namespace rf::bench {
namespace {

class ScaleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RF_REQUIRE(test::sqpoll_feature());
    RF_REQUIRE(test::no_mmap_feature());
    RF_REQUIRE(test::restrictions_feature());
    path_ = test::write_bench_target(dir_);
    ASSERT_FALSE(path_.empty());
    if (!test::takes_direct_io(path_)) GTEST_SKIP() << "the temporary directory's file system cannot do O_DIRECT";
  }

  TempDir dir_{"ringfence-test"};
  std::string path_;
};

TEST_F(ScaleTest, SetUpTimesAreMeasuredStepByStep) {
  for (abi::Mode mode : {abi::Mode::Passthrough, abi::Mode::Mediated}) {
    auto samples = measure_device_setup(mode, path_, 3, 4ull << 20, std::nullopt);
    ASSERT_TRUE(samples) << samples.error();
    ASSERT_EQ(samples->size(), 3u);
    for (const DeviceSetupTimes& t : *samples) {
      for (auto step : {t.create_ring, t.register_files, t.register_buffers, t.restrict_ring, t.enable}) {
        EXPECT_GT(step.count(), 0);
      }
      EXPECT_GE(t.total, t.create_ring + t.register_files + t.register_buffers + t.restrict_ring + t.enable);
      EXPECT_EQ(t.without_buffers(), t.total - t.register_buffers);
    }
    const auto median = median_of(*samples, [](const DeviceSetupTimes& t) { return t.total; });
    EXPECT_GE(median, std::min({(*samples)[0].total, (*samples)[1].total, (*samples)[2].total}));
    EXPECT_LE(median, std::max({(*samples)[0].total, (*samples)[1].total, (*samples)[2].total}));
  }
}

TEST_F(ScaleTest, RegistrationIsReportedPerGib) {
  for (bool prefault : {false, true}) {
    auto r = measure_registration(path_, 64ull << 20, prefault);
    ASSERT_TRUE(r) << r.error();
    EXPECT_EQ(r->ram_bytes, 64ull << 20);
    EXPECT_GT(r->register_buffers.count(), 0);
    EXPECT_EQ(r->prefault.count() > 0, prefault);
    const double ms = std::chrono::duration<double, std::milli>(r->register_buffers).count();
    EXPECT_NEAR(r->ms_per_gib(), ms * 16, 1e-6);
  }
}

TEST_F(ScaleTest, SeveralGuestsRunAtOnceWithOrWithoutASharedSqpollThread) {
  if (!kHaveCycleCounter) GTEST_SKIP() << "no cycle counter the guest can read on this CPU";
  GuestJobSpec spec;
  spec.job.size_bytes = 8 << 20;
  spec.job.depth = 4;
  spec.job.ramp = std::chrono::milliseconds(50);
  spec.job.runtime = std::chrono::milliseconds(300);
  spec.target = path_;
  spec.guest_binary = RF_GUEST_PATH;
  spec.poll = false;
  for (bool shared : {false, true}) {
    // Writers too: they share one disk handle (a second writable open of the image is refused).
    spec.job.pattern = shared ? Pattern::RandWrite : Pattern::RandRead;
    auto fleet = run_guest_fleet(spec, 3, shared);
    ASSERT_TRUE(fleet) << fleet.error();
    ASSERT_EQ(fleet->guests.size(), 3u);
    double sum = 0;
    for (const JobResult& g : fleet->guests) {
      EXPECT_GT(g.ios, 0u) << (shared ? "shared" : "separate");
      EXPECT_EQ(g.errors, 0u) << (shared ? "shared" : "separate");
      sum += g.iops();
    }
    EXPECT_DOUBLE_EQ(fleet->total_iops(), sum);
    EXPECT_GT(fleet->cpu_us_per_io(), 0.0);
  }
}

TEST_F(ScaleTest, OnlyPassthroughSqpollGuestsShareAnSqpollThread) {
  if (!kHaveCycleCounter) GTEST_SKIP() << "no cycle counter the guest can read on this CPU";
  GuestJobSpec spec;
  spec.job.depth = 1;
  spec.target = path_;
  spec.guest_binary = RF_GUEST_PATH;
  auto first = GuestBench::start(GuestRow::PassthroughSqpoll, spec);
  ASSERT_TRUE(first) << first.error();
  for (GuestRow row : {GuestRow::Mediated, GuestRow::Passthrough}) {
    auto second = GuestBench::start(row, spec, first->get());
    ASSERT_FALSE(second) << guest_row_name(row);
    EXPECT_NE(second.error().find("passthrough-sqpoll"), std::string::npos) << second.error();
  }
  // A bounded passthrough guest has no SQPOLL thread to share either.
  auto bounded = GuestBench::start(GuestRow::Passthrough, spec);
  ASSERT_TRUE(bounded) << bounded.error();
  auto third = GuestBench::start(GuestRow::PassthroughSqpoll, spec, bounded->get());
  ASSERT_FALSE(third);
  EXPECT_NE(third.error().find("passthrough-sqpoll"), std::string::npos) << third.error();
}

}  // namespace
}  // namespace rf::bench
