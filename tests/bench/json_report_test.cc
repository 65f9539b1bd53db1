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
  s.cpu_us_per_io = 4;
  const std::vector<ReportCell> cells{{"restricted", 8, &s, "", {1900, 2000, 2100}},
                                      {"bare-sqpoll-iopoll", 8, nullptr, "no poll queues", {}}};
  const std::vector<ReportRatio> ratios{
      {"restricted", "bare-sqpoll", 8, {0.98, 0.95, 1.01, 3}, "", ""},
      {"mediated", "bare", 8, {0.85, 0.80, 0.88, 3}, "mediated ≥ 0.90 × best host row", "MISSED"}};
  const nlohmann::json r =
      fio_shaped_report({"0.1.0", Pattern::RandRW, 4096, 1, 2, "/dev/x", "CPU-bound (zram0)"}, cells, ratios);
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
  // ringfence's additions, under names fio does not use.
  EXPECT_DOUBLE_EQ(job["ringfence_iops_per_cpu_second"].get<double>(), 250000.0) << "4 µs of CPU per I/O";
  EXPECT_EQ(job["ringfence_round_iops"].size(), 3u);
  EXPECT_EQ(r["ringfence_target_kind"], "CPU-bound (zram0)");
  ASSERT_EQ(r["ringfence_ratios"].size(), 2u);
  EXPECT_EQ(r["ringfence_ratios"][0]["denominator"], "bare-sqpoll");
  EXPECT_DOUBLE_EQ(r["ringfence_ratios"][0]["low"].get<double>(), 0.95);
  EXPECT_EQ(r["ringfence_ratios"][0]["rounds"], 3u);
  EXPECT_FALSE(r["ringfence_ratios"][0].contains("verdict")) << "a row against its baseline is not a target";
  EXPECT_EQ(r["ringfence_ratios"][1]["verdict"], "MISSED");
}

}  // namespace
}  // namespace rf::bench
