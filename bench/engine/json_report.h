// `ringfence bench --json FILE`: the results in the shape of fio's --output-format=json, so
// tools that read fio's reports (jobs[].read.iops, jobs[].read.clat_ns.percentile, ...) read
// these. One job per (row, iodepth), named "<row>-iodepth<N>", holding that cell's median run,
// with ringfence's additions under names fio does not use: every round's IOPS and the IOPS per
// host CPU-second per job, and at the top the ratios and targets with their intervals.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/fio_job.h"
#include "engine/ratio_interval.h"

namespace rf::bench {

struct ReportCell {
  std::string row;
  std::uint32_t iodepth = 0;
  const RowSummary* median = nullptr;  // null: the row did not run (unsupported)
  std::string unsupported;
  std::vector<double> round_iops;  // every run's IOPS, in the order run
};

// A ratio between two rows at one depth, paired by round; for a target also its verdict.
struct ReportRatio {
  std::string numerator, denominator;
  std::uint32_t iodepth = 0;
  RatioEstimate estimate;
  std::string target;   // the target's text; empty for a row against its baseline
  std::string verdict;  // met, MISSED or undecided; empty for a row against its baseline
};

struct ReportHeader {
  std::string version;  // ringfence's
  Pattern pattern = Pattern::RandRead;
  std::uint32_t block_bytes = 4096;
  double ramp_s = 0, runtime_s = 0;
  std::string target;
  std::string target_kind;  // what the target can and cannot show
};

nlohmann::json fio_shaped_report(const ReportHeader& header, const std::vector<ReportCell>& cells,
                                 const std::vector<ReportRatio>& ratios = {});

}  // namespace rf::bench
