#include "engine/fio_job.h"

#include <algorithm>

#include <gtest/gtest.h>

namespace rf::bench {
namespace {

bool has(const std::vector<std::string>& argv, const std::string& arg) {
  return std::find(argv.begin(), argv.end(), arg) != argv.end();
}

TEST(FioJob, TheCommandMatchesTheSqpollRowsOptions) {
  FioJob job{"/dev/nvme0n1", 1ull << 30, 4096, 16, Pattern::RandRead, 1, 5, 0u, 1u, true};
  const std::vector<std::string> argv = fio_command(job);
  EXPECT_EQ(argv.front(), "fio");
  for (const char* arg : {"--filename=/dev/nvme0n1", "--rw=randread", "--bs=4096", "--direct=1", "--ioengine=io_uring",
                          "--iodepth=16", "--registerfiles=1", "--fixedbufs=1", "--sqthread_poll=1",
                          "--sqthread_poll_cpu=1", "--cpus_allowed=0", "--hipri=1", "--time_based",
                          "--lat_percentiles=1", "--output-format=json"}) {
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

TEST(FioJob, RefusesSomethingThatIsNotAReport) {
  EXPECT_FALSE(parse_fio_json("fio: engine io_uring not loadable", Pattern::RandRead));
  EXPECT_FALSE(parse_fio_json(R"({"jobs": []})", Pattern::RandRead));
}

}  // namespace
}  // namespace rf::bench
