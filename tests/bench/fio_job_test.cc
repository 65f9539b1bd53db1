#include "engine/fio_job.h"

#include <algorithm>

#include <gtest/gtest.h>

#include "support/kernel_caps.h"
#include "support/test_disk.h"
#include "util/temp_dir.h"

namespace rf::bench {
namespace {

bool has(const std::vector<std::string>& argv, const std::string& arg) {
  return std::find(argv.begin(), argv.end(), arg) != argv.end();
}

TEST(FioJob, TheCommandMatchesTheSqpollRowsOptions) {
  FioJob job{"/dev/nvme0n1", 1ull << 30, 4096, 16, Pattern::RandRead, 0.5, 2.25, 0u, 1u, true};
  const std::vector<std::string> argv = fio_command(job);
  EXPECT_EQ(argv.front(), "fio");
  for (const char* arg : {"--filename=/dev/nvme0n1", "--rw=randread", "--bs=4096", "--direct=1", "--ioengine=io_uring",
                          "--iodepth=16", "--registerfiles=1", "--fixedbufs=1", "--sqthread_poll=1",
                          "--sqthread_poll_cpu=1", "--cpus_allowed=0", "--hipri=1", "--time_based",
                          "--lat_percentiles=1", "--output-format=json", "--thread",
                          "--ramp_time=500ms", "--runtime=2250ms"}) {  // fio reads "0.5" as 0 s
    EXPECT_TRUE(has(argv, arg)) << arg;
  }
  job.hipri = false;
  EXPECT_FALSE(has(fio_command(job), "--hipri=1"));
}

// The shape of fio 3.33's JSON report, trimmed to what the parser reads.
constexpr const char* kReport = R"({
  "fio version" : "fio-3.33",
  "jobs" : [ {
    "jobname" : "ringfence",
    "read" : { "iops" : 24391.6, "total_ios" : 24400, "runtime" : 1000,
               "lat_ns" : { "mean" : 40223.3, "percentile" : { "50.000000" : 37000, "99.000000" : 81000,
                                                                 "99.900000" : 350000 } } },
    "write" : { "iops" : 0.0, "total_ios" : 0, "runtime" : 0 },
    "usr_cpu" : 20.0, "sys_cpu" : 30.0
  } ]
})";

TEST(FioJob, ParsesIopsLatencyAndCpuFromTheJsonReport) {
  auto s = parse_fio_json(kReport, Pattern::RandRead);
  ASSERT_TRUE(s) << s.error();
  EXPECT_DOUBLE_EQ(s->iops, 24391.6);
  EXPECT_EQ(s->ios, 24400u);
  EXPECT_EQ(s->p50_ns, 37000u);
  EXPECT_EQ(s->p99_ns, 81000u);
  EXPECT_EQ(s->p999_ns, 350000u);
  // 50% of one CPU for 1000 ms over 24400 I/Os.
  EXPECT_NEAR(s->cpu_us_per_io, 0.5 * 1000.0 * 1000.0 / 24400.0, 1e-9);
}

TEST(FioJob, ItsCpuIsTheWholeProcessesSqpollThreadIncluded) {
  RF_REQUIRE(test::sqpoll_feature());
  const TempDir dir("ringfence-test");
  const std::string path = test::write_bench_target(dir);
  ASSERT_FALSE(path.empty());
  if (!test::takes_direct_io(path)) GTEST_SKIP() << "the temporary directory's file system cannot do O_DIRECT";
  // Long enough for the CPU to be sampled (kShortestSampledRuntime); install-deps.sh installs fio.
  const FioJob job{path, 8 << 20, 4096, 4, Pattern::RandRead, 0.2, 0.8, 0u, 1u, false};
  auto s = run_fio_job(job);
  ASSERT_TRUE(s) << s.error();
  ASSERT_GT(s->iops, 0.0);
  // fio's own usr + sys are its job thread's; the sampled figure adds the SQPOLL thread, which
  // polls the SQ all through the run.
  const double own_cpus = (s->usr_cpu_pct + s->sys_cpu_pct) / 100.0;
  const double sampled_cpus = s->cpu_us_per_io * s->iops / 1e6;
  EXPECT_GT(sampled_cpus, own_cpus + 0.2) << "fio's own " << own_cpus << " CPUs, sampled " << sampled_cpus;
}

TEST(FioJob, RefusesSomethingThatIsNotAReport) {
  EXPECT_FALSE(parse_fio_json("fio: engine io_uring not loadable", Pattern::RandRead));
  EXPECT_FALSE(parse_fio_json(R"({"jobs": []})", Pattern::RandRead));
}

}  // namespace
}  // namespace rf::bench
