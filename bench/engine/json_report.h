// `ringfence bench --json FILE`: the results in the shape of fio's --output-format=json, so
// tools that read fio's reports (jobs[].read.iops, jobs[].read.clat_ns.percentile, ...) read
// these. One job per (row, iodepth), named "<row>-iodepth<N>", holding that cell's median run.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/fio_job.h"

namespace rf::bench {

struct ReportCell {
  std::string row;
  std::uint32_t iodepth = 0;
  const RowSummary* median = nullptr;  // null: the row did not run (unsupported)
  std::string unsupported;
};

struct ReportHeader {
  std::string version;  // ringfence's
  Pattern pattern = Pattern::RandRead;
  std::uint32_t block_bytes = 4096;
  double ramp_s = 0, runtime_s = 0;
  std::string target;
};

nlohmann::json fio_shaped_report(const ReportHeader& header, const std::vector<ReportCell>& cells);

}  // namespace rf::bench
