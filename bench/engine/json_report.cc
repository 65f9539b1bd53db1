#include "engine/json_report.h"

#include <ctime>

#include <fmt/format.h>

namespace rf::bench {

namespace {

// fio's per-direction object: the fields its readers use most.
nlohmann::json direction(const RowSummary& s, std::uint64_t ios, std::uint32_t block_bytes) {
  const double seconds = s.runtime_ms / 1000.0;
  const double iops = seconds > 0 ? static_cast<double>(ios) / seconds : 0.0;
  nlohmann::json latency = {
      {"min", ios == 0 ? 0 : s.min_ns},
      {"max", ios == 0 ? 0 : s.max_ns},
      {"mean", ios == 0 ? 0.0 : s.mean_ns},
      {"percentile",
       {{"50.000000", ios == 0 ? 0 : s.p50_ns}, {"99.000000", ios == 0 ? 0 : s.p99_ns},
        {"99.900000", ios == 0 ? 0 : s.p999_ns}}},
  };
  // fio's json+ histogram: latency in ns (a bucket's upper bound) -> count, as fio's own
  // readers (fio_jsonplus_clat2csv) take it.
  if (ios != 0 && !s.latency_bins.empty()) {
    nlohmann::json bins = nlohmann::json::object();
    for (const auto& [ns, count] : s.latency_bins) bins[std::to_string(ns)] = count;
    latency["bins"] = std::move(bins);
  }
  return {
      {"io_bytes", ios * block_bytes},
      {"io_kbytes", ios * block_bytes / 1024},
      {"bw", static_cast<std::uint64_t>(iops * block_bytes / 1024)},  // KiB/s, as fio
      {"iops", iops},
      {"runtime", static_cast<std::uint64_t>(s.runtime_ms)},
      {"total_ios", ios},
      // Completion latency measured from submission: the same number in both (fio's lat).
      {"clat_ns", latency},
      {"lat_ns", latency},
  };
}

}  // namespace

nlohmann::json fio_shaped_report(const ReportHeader& h, const std::vector<ReportCell>& cells,
                                 const std::vector<ReportRatio>& ratios) {
  nlohmann::json jobs = nlohmann::json::array();
  for (const ReportCell& c : cells) {
    nlohmann::json job = {
        {"jobname", fmt::format("{}-iodepth{}", c.row, c.iodepth)},
        {"groupid", 0},
        {"job options", {{"name", c.row}, {"iodepth", std::to_string(c.iodepth)}}},
    };
    if (c.median == nullptr) {
      job["error"] = 1;
      job["ringfence_unsupported"] = c.unsupported;
      const RowSummary empty;
      job["read"] = direction(empty, 0, h.block_bytes);
      job["write"] = direction(empty, 0, h.block_bytes);
      job["trim"] = direction(empty, 0, h.block_bytes);
    } else {
      job["error"] = 0;
      job["read"] = direction(*c.median, c.median->reads, h.block_bytes);
      job["write"] = direction(*c.median, c.median->writes, h.block_bytes);
      job["trim"] = direction(RowSummary{}, 0, h.block_bytes);  // fio always has one
      job["usr_cpu"] = c.median->usr_cpu_pct;
      job["sys_cpu"] = c.median->sys_cpu_pct;
      job["ringfence_iops_per_cpu_second"] = c.median->iops_per_cpu_second();
      job["ringfence_round_iops"] = c.round_iops;
    }
    jobs.push_back(std::move(job));
  }
  nlohmann::json ratio_list = nlohmann::json::array();
  for (const ReportRatio& r : ratios) {
    nlohmann::json entry = {{"numerator", r.numerator},   {"denominator", r.denominator}, {"iodepth", r.iodepth},
                            {"ratio", r.estimate.ratio}, {"low", r.estimate.low},       {"high", r.estimate.high},
                            {"rounds", r.estimate.pairs}};
    if (!r.target.empty()) {
      entry["target"] = r.target;
      entry["verdict"] = r.verdict;
    }
    ratio_list.push_back(std::move(entry));
  }
  return {
      {"fio version", "ringfence-" + h.version},
      {"timestamp", static_cast<std::int64_t>(std::time(nullptr))},
      {"global options",
       {{"rw", std::string(pattern_name(h.pattern))},
        {"bs", std::to_string(h.block_bytes)},
        {"direct", "1"},
        {"ioengine", "io_uring"},
        {"ramp_time", fmt::format("{}", h.ramp_s)},
        {"runtime", fmt::format("{}", h.runtime_s)},
        {"filename", h.target}}},
      {"jobs", jobs},
      {"ringfence_target_kind", h.target_kind},
      {"ringfence_ratios", std::move(ratio_list)},
  };
}

}  // namespace rf::bench
