// The guest rows of the bench on a small real target: the sandboxed guest process does real
// I/O through each device, the VMM turns its cycle counts into a measured window and latencies,
// and a guest that fails or a job the guest cannot run is a clear error.
#include "engine/guest_job.h"

#include <gtest/gtest.h>

#include "guest/workload.h"
#include "support/kernel_caps.h"
#include "support/test_disk.h"
#include "util/cycle_counter.h"
#include "util/temp_dir.h"

namespace rf::bench {
namespace {

class GuestJobTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RF_REQUIRE(test::sqpoll_feature());
    RF_REQUIRE(test::no_mmap_feature());
    RF_REQUIRE(test::restrictions_feature());
    if (!kHaveCycleCounter) GTEST_SKIP() << "no cycle counter the guest can read on this CPU";
    path_ = test::write_bench_target(dir_);
    ASSERT_FALSE(path_.empty());
    if (!test::takes_direct_io(path_)) GTEST_SKIP() << "the temporary directory's file system cannot do O_DIRECT";
  }
  GuestJobSpec spec(std::uint32_t depth, Pattern pattern = Pattern::RandRead) const {
    GuestJobSpec s;
    s.job.size_bytes = 8 << 20;
    s.job.depth = depth;
    s.job.pattern = pattern;
    s.job.ramp = std::chrono::milliseconds(100);
    s.job.runtime = std::chrono::milliseconds(300);
    s.target = path_;
    s.guest_binary = RF_GUEST_PATH;
    return s;
  }

  TempDir dir_{"ringfence-test"};
  std::string path_;
};

TEST_F(GuestJobTest, EachGuestRowDoesRealIoAndMeasuresTheRuntime) {
  for (GuestRow row : {GuestRow::Passthrough, GuestRow::PassthroughSqpoll, GuestRow::Mediated}) {
    auto result = run_guest_job(row, spec(8));
    ASSERT_TRUE(result) << guest_row_name(row) << ": " << result.error();
    EXPECT_GT(result->ios, 0u) << guest_row_name(row);
    EXPECT_EQ(result->reads, result->ios) << guest_row_name(row);
    EXPECT_EQ(result->errors, 0u) << guest_row_name(row) << " first error " << result->first_error;
    EXPECT_EQ(result->latency.count(), result->ios) << guest_row_name(row);
    // The guest's window, converted with the VMM's calibration, is about the runtime.
    EXPECT_GE(result->measured, std::chrono::milliseconds(250)) << guest_row_name(row);
    EXPECT_LT(result->measured, std::chrono::milliseconds(600)) << guest_row_name(row);
    // A 4 KiB O_DIRECT read takes more than a microsecond and less than a second.
    EXPECT_GT(result->latency.percentile(50), 1'000u) << guest_row_name(row);
    EXPECT_LT(result->latency.percentile(50), 1'000'000'000u) << guest_row_name(row);
    EXPECT_GT(result->cpu_us_per_io(), 0.0) << guest_row_name(row);
  }
}

TEST_F(GuestJobTest, WritesGoThroughBothRows) {
  for (GuestRow row : {GuestRow::Passthrough, GuestRow::Mediated}) {
    auto result = run_guest_job(row, spec(4, Pattern::RandRW));
    ASSERT_TRUE(result) << guest_row_name(row) << ": " << result.error();
    EXPECT_GT(result->writes, 0u) << guest_row_name(row);
    EXPECT_GT(result->reads, 0u) << guest_row_name(row);
    EXPECT_EQ(result->errors, 0u) << guest_row_name(row) << " first error " << result->first_error;
  }
}

TEST_F(GuestJobTest, ADepthTheGuestCannotKeepIsRefused) {
  auto result = run_guest_job(GuestRow::Passthrough, spec(guest::kWorkloadMaxDepth + 1));
  ASSERT_FALSE(result);
  EXPECT_NE(result.error().find("in flight"), std::string::npos) << result.error();
}

TEST_F(GuestJobTest, AGuestThatFailsIsAnErrorThatSaysHow) {
  GuestJobSpec s = spec(4);
  s.job.block_bytes = (1u << 20) + 4096;  // more than the device's max_transfer: the guest refuses it
  auto result = run_guest_job(GuestRow::Mediated, s);
  ASSERT_FALSE(result);
  EXPECT_NE(result.error().find("bad configuration"), std::string::npos) << result.error();
}

TEST_F(GuestJobTest, AMissingGuestBinaryIsAnError) {
  GuestJobSpec s = spec(4);
  s.guest_binary = "/nonexistent/ringfence-guest";
  auto result = run_guest_job(GuestRow::Passthrough, s);
  ASSERT_FALSE(result);
  EXPECT_NE(result.error().find("/nonexistent/ringfence-guest"), std::string::npos) << result.error();
}

TEST_F(GuestJobTest, AMissingTargetIsAnError) {
  GuestJobSpec s = spec(4);
  s.target = dir_.path() + "/missing";
  auto result = run_guest_job(GuestRow::Passthrough, s);
  ASSERT_FALSE(result);
  EXPECT_NE(result.error().find("missing"), std::string::npos) << result.error();
}

TEST(GuestJobNames, RowsAreNamedAsInTheTable) {
  EXPECT_EQ(guest_row_name(GuestRow::Passthrough), "passthrough");
  EXPECT_EQ(guest_row_name(GuestRow::PassthroughSqpoll), "passthrough-sqpoll");
  EXPECT_EQ(guest_row_name(GuestRow::Mediated), "mediated");
}

}  // namespace
}  // namespace rf::bench
