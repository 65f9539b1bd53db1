// The fio row: Debian's fio, with its io_uring engine and the options that match the
// bare-sqpoll row (registerfiles, fixedbufs, sqthread_poll pinned like ours, hipri where the
// target polls), run by the bench and read from its JSON output: IOPS, latency percentiles
// (fio's lat, submission to completion, like the other rows'), and CPU.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "engine/block_job.h"

namespace rf::bench {

// What one run of any row reports in the table.
struct RowSummary {
  double iops = 0;
  std::uint64_t ios = 0;
  std::uint64_t reads = 0, writes = 0;
  double runtime_ms = 0;
  std::uint64_t p50_ns = 0, p99_ns = 0, p999_ns = 0;
  std::uint64_t min_ns = 0, max_ns = 0;
  double mean_ns = 0;
  double cpu_us_per_io = 0;
  double usr_cpu_pct = 0, sys_cpu_pct = 0;  // of one CPU over the runtime, as fio reports them
  std::vector<std::pair<std::uint64_t, std::uint64_t>> latency_bins;  // (ns, count); empty for fio's row
  // The I/Os one second of the host CPU it used bought; 0 without a CPU figure.
  double iops_per_cpu_second() const { return cpu_us_per_io > 0 ? 1e6 / cpu_us_per_io : 0; }
};
RowSummary summarize(const JobResult& result);

struct FioJob {
  std::string target;  // a path
  std::uint64_t size_bytes = 0;
  std::uint32_t block_bytes = 4096;
  std::uint32_t depth = 1;
  Pattern pattern = Pattern::RandRead;
  double ramp_s = 1, runtime_s = 5;
  std::optional<unsigned> app_cpu, sqpoll_cpu;
  bool hipri = false;
};

// fio's command line for `job` (argv[0] = "fio").
std::vector<std::string> fio_command(const FioJob& job);
// Reads the summary from fio's --output-format=json text.
Result<RowSummary, std::string> parse_fio_json(const std::string& json, Pattern pattern);
// Runs fio and parses its output; an error says what went wrong (fio missing, failed, ...).
Result<RowSummary, std::string> run_fio_job(const FioJob& job);

}  // namespace rf::bench
