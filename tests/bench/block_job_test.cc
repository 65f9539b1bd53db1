// The bench engine on a small real target: every row it can run completes real I/O, counts only
// the measured window, and IOPOLL reports "unsupported" with the reason where nothing polls.
#include "engine/block_job.h"

#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "ring/iopoll_probe.h"
#include "support/kernel_caps.h"
#include "support/test_disk.h"
#include "util/temp_dir.h"
#include "util/unique_fd.h"

namespace rf::bench {
namespace {

class BlockJobTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RF_REQUIRE(test::io_uring_feature());
    path_ = test::write_bench_target(dir_);
    ASSERT_FALSE(path_.empty());
    if (!test::takes_direct_io(path_)) GTEST_SKIP() << "the temporary directory's file system cannot do O_DIRECT";
    fd_.reset(::open(path_.c_str(), O_RDWR | O_DIRECT | O_CLOEXEC));
    ASSERT_TRUE(fd_);
  }
  JobSpec spec(std::uint32_t depth, Pattern pattern = Pattern::RandRead) const {
    JobSpec s;
    s.fd = fd_.get();
    s.size_bytes = 8 << 20;
    s.depth = depth;
    s.pattern = pattern;
    s.ramp = std::chrono::milliseconds(50);
    s.runtime = std::chrono::milliseconds(200);
    return s;
  }

  TempDir dir_{"ringfence-test"};
  std::string path_;
  UniqueFd fd_;
};

TEST_F(BlockJobTest, EveryRowDoesRealIoAndMeasuresOnlyTheRuntime) {
  RF_REQUIRE(test::sqpoll_feature());
  RF_REQUIRE(test::restrictions_feature());
  for (HostRow row : {HostRow::Bare, HostRow::BareSqpoll, HostRow::Restricted}) {
    JobSpec s = spec(8);
    s.ramp = std::chrono::milliseconds(400);
    auto result = run_host_job(row, s);
    ASSERT_TRUE(result) << host_row_name(row) << ": " << result.error();
    EXPECT_GT(result->ios, 0u) << host_row_name(row);
    EXPECT_EQ(result->errors, 0u) << host_row_name(row) << " first error " << result->first_error;
    EXPECT_EQ(result->latency.count(), result->ios) << host_row_name(row);
    // The measured window is the runtime (plus the wait for the last completion), not ramp + runtime.
    EXPECT_GE(result->measured, std::chrono::milliseconds(200)) << host_row_name(row);
    EXPECT_LT(result->measured, std::chrono::milliseconds(550)) << host_row_name(row);
    EXPECT_GT(result->latency.percentile(50), 0u) << host_row_name(row);
    EXPECT_GT(result->cpu_us_per_io(), 0.0) << host_row_name(row);
  }
}

TEST_F(BlockJobTest, WritesAndMixedJobsComplete) {
  for (Pattern p : {Pattern::RandWrite, Pattern::RandRW}) {
    auto result = run_host_job(HostRow::Bare, spec(4, p));
    ASSERT_TRUE(result) << result.error();
    EXPECT_GT(result->ios, 0u) << pattern_name(p);
    EXPECT_EQ(result->errors, 0u) << pattern_name(p);
  }
}

TEST_F(BlockJobTest, IopollSaysWhyWhereNothingPolls) {
  const IopollStatus status = probe_iopoll(path_);
  if (status.supported) GTEST_SKIP() << "this target polls; the unsupported path is not reachable here";
  EXPECT_FALSE(status.detail.empty());
}

TEST_F(BlockJobTest, RefusesAJobWithoutATarget) {
  JobSpec s = spec(1);
  s.fd = -1;
  auto result = run_host_job(HostRow::Bare, s);
  ASSERT_FALSE(result);
  EXPECT_NE(result.error().find("target"), std::string::npos) << result.error();
}

TEST(BlockJobNames, PatternsUseFiosNames) {
  EXPECT_EQ(pattern_from_name("randread"), Pattern::RandRead);
  EXPECT_EQ(pattern_from_name("randrw"), Pattern::RandRW);
  EXPECT_FALSE(pattern_from_name("read"));
  EXPECT_EQ(host_row_name(HostRow::BareSqpollIopoll), "bare-sqpoll-iopoll");
}

}  // namespace
}  // namespace rf::bench
