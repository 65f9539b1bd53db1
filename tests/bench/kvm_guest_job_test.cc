// The KVM rows of the bench on a small real target: the bare-metal guest does real I/O in a
// virtual machine through each device, the VMM turns its TSC ticks into a measured window and
// latencies, and a guest that fails or a job that cannot run is a clear error. Skips where
// /dev/kvm is not usable.
#include "engine/kvm_guest_job.h"

#include <gtest/gtest.h>

#include "guest/workload.h"
#include "support/kernel_caps.h"
#include "support/test_disk.h"
#include "util/temp_dir.h"

namespace rf::bench {
namespace {

using namespace std::chrono_literals;

class KvmGuestJobTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RF_REQUIRE(test::kvm_feature());
    RF_REQUIRE(test::sqpoll_feature());
    RF_REQUIRE(test::restrictions_feature());
    path_ = test::write_bench_target(dir_);
    ASSERT_FALSE(path_.empty());
    if (!test::takes_direct_io(path_)) GTEST_SKIP() << "the temporary directory's file system cannot do O_DIRECT";
  }
  KvmJobSpec spec(std::uint32_t depth, Pattern pattern = Pattern::RandRead) const {
    KvmJobSpec s;
    s.job.depth = depth;
    s.job.pattern = pattern;
    s.job.ramp = 100ms;
    s.job.runtime = 500ms;
    s.target = path_;
    s.guest_image = RF_KVM_GUEST_IMAGE;
    return s;
  }

  TempDir dir_{"ringfence-test"};
  std::string path_;
};

TEST_F(KvmGuestJobTest, EachKvmRowDoesRealIoAndMeasuresTheRuntime) {
  for (GuestRow row : {GuestRow::Passthrough, GuestRow::Mediated}) {
    auto result = run_kvm_guest_job(row, spec(8));
    ASSERT_TRUE(result) << kvm_row_name(row) << ": " << result.error();
    EXPECT_GT(result->ios, 0u) << kvm_row_name(row);
    EXPECT_EQ(result->reads, result->ios) << kvm_row_name(row);
    EXPECT_EQ(result->errors, 0u) << kvm_row_name(row) << " first error " << result->first_error;
    EXPECT_EQ(result->latency.count(), result->ios) << kvm_row_name(row);
    // The guest's window, in its own TSC ticks converted with the offset and the VMM's
    // calibration, is about the runtime (an emulated guest may see Stop a little late).
    EXPECT_GE(result->measured, 400ms) << kvm_row_name(row);
    EXPECT_LT(result->measured, 1000ms) << kvm_row_name(row);
    EXPECT_GT(result->latency.percentile(50), 1'000u) << kvm_row_name(row);
    EXPECT_LT(result->latency.percentile(50), 1'000'000'000u) << kvm_row_name(row);
    // At least the vCPU thread was busy all the time.
    EXPECT_GT(result->cpu, 300ms) << kvm_row_name(row);
  }
}

TEST_F(KvmGuestJobTest, WritesGoThroughBothRows) {
  for (GuestRow row : {GuestRow::Passthrough, GuestRow::Mediated}) {
    auto result = run_kvm_guest_job(row, spec(4, Pattern::RandRW));
    ASSERT_TRUE(result) << kvm_row_name(row) << ": " << result.error();
    EXPECT_GT(result->writes, 0u) << kvm_row_name(row);
    EXPECT_GT(result->reads, 0u) << kvm_row_name(row);
    EXPECT_EQ(result->errors, 0u) << kvm_row_name(row) << " first error " << result->first_error;
  }
}

TEST_F(KvmGuestJobTest, AGuestThatFailsIsAnErrorThatSaysHow) {
  KvmJobSpec s = spec(4);
  s.job.block_bytes = (1u << 20) + 4096;  // more than the device's max_transfer: the guest refuses it
  auto result = run_kvm_guest_job(GuestRow::Mediated, s);
  ASSERT_FALSE(result);
  EXPECT_NE(result.error().find("bad configuration"), std::string::npos) << result.error();
}

TEST_F(KvmGuestJobTest, JobsThatCannotRunAreErrorsThatNameTheProblem) {
  auto deep = run_kvm_guest_job(GuestRow::Passthrough, spec(guest::kWorkloadMaxDepth + 1));
  ASSERT_FALSE(deep);
  EXPECT_NE(deep.error().find("in flight"), std::string::npos) << deep.error();

  KvmJobSpec no_image = spec(4);
  no_image.guest_image = "/nonexistent/ringfence-kvm-guest.bin";
  auto image = run_kvm_guest_job(GuestRow::Passthrough, no_image);
  ASSERT_FALSE(image);
  EXPECT_NE(image.error().find("/nonexistent/ringfence-kvm-guest.bin"), std::string::npos) << image.error();

  KvmJobSpec no_target = spec(4);
  no_target.target = dir_.path() + "/missing";
  auto target = run_kvm_guest_job(GuestRow::Mediated, no_target);
  ASSERT_FALSE(target);
  EXPECT_NE(target.error().find("missing"), std::string::npos) << target.error();
}

TEST(KvmGuestJobNames, RowsAreNamedAsInTheTable) {
  EXPECT_EQ(kvm_row_name(GuestRow::Passthrough), "kvm-passthrough");
  EXPECT_EQ(kvm_row_name(GuestRow::Mediated), "kvm-mediated");
}

}  // namespace
}  // namespace rf::bench
