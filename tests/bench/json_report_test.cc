#include "engine/json_report.h"

#include <gtest/gtest.h>

namespace rf::bench {
namespace {

TEST(JsonReport, HasFiosShapeOneJobPerRowAndDepth) {
  RowSummary s;
  s.reads = 3000;
  s.writes = 1000;
  s.ios = 4000;
  s.runtime_ms = 2000;
  s.p50_ns = 40000;
  s.p99_ns = 90000;
  s.p999_ns = 200000;
  s.usr_cpu_pct = 12.5;
  s.sys_cpu_pct = 40;
  const std::vector<ReportCell> cells{{"restricted", 8, &s, ""}, {"bare-sqpoll-iopoll", 8, nullptr, "no poll queues"}};
  const nlohmann::json r = fio_shaped_report({"0.1.0", Pattern::RandRW, 4096, 1, 2, "/dev/x"}, cells);
  EXPECT_EQ(r["fio version"], "ringfence-0.1.0");
  EXPECT_EQ(r["global options"]["rw"], "randrw");
  EXPECT_EQ(r["global options"]["bs"], "4096");
  ASSERT_EQ(r["jobs"].size(), 2u);
  const nlohmann::json& job = r["jobs"][0];
  EXPECT_EQ(job["jobname"], "restricted-iodepth8");
  EXPECT_EQ(job["job options"]["iodepth"], "8");
  EXPECT_DOUBLE_EQ(job["read"]["iops"].get<double>(), 1500.0);  // 3000 reads in 2 s
  EXPECT_DOUBLE_EQ(job["write"]["iops"].get<double>(), 500.0);
  EXPECT_EQ(job["read"]["total_ios"], 3000u);
  EXPECT_EQ(job["read"]["io_bytes"], 3000u * 4096u);
  EXPECT_EQ(job["read"]["clat_ns"]["percentile"]["99.000000"], 90000u);
  EXPECT_EQ(job["read"]["lat_ns"]["percentile"]["99.900000"], 200000u);
  EXPECT_DOUBLE_EQ(job["usr_cpu"].get<double>(), 12.5);
  EXPECT_EQ(r["jobs"][1]["error"], 1);
  EXPECT_EQ(r["jobs"][1]["ringfence_unsupported"], "no poll queues");
  EXPECT_EQ(r["jobs"][1]["read"]["iops"], 0.0);
}

}  // namespace
}  // namespace rf::bench
