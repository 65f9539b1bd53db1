// The table `ringfence bench` measures: every row at every iodepth, the whole table repeated in
// rounds, interleaved (every row at a depth, then the next depth, then the next round), and the
// rows' order reversed every other round (A B C, C B A, ...) so that a machine's drift spreads
// over all rows alike and two rows' runs of one round are neighbours in time. Each (row, depth)
// cell keeps every run with its round; ratios pair the runs of a round (ratio_interval.h). The
// job loop is here; the command parses its arguments and renders.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/block_job.h"
#include "engine/fio_job.h"
#include "engine/ratio_interval.h"
#include "engine/row_catalogue.h"
#include "util/result.h"

namespace rf::bench {

// One (row, depth) cell: its runs, or why the row could not run.
struct Cell {
  std::vector<RowSummary> runs;
  std::vector<unsigned> rounds;  // rounds[i]: the round runs[i] ran in
  std::string unsupported;  // set when no run succeeded: the first failure's reason
  unsigned failed_runs = 0;  // runs that failed (a cell with runs too: some repeats failed)
  std::string failure;       // the first failure's reason
  std::uint64_t errors = 0;  // failed completions over all runs
  int first_error = 0;       // -errno of the first
  // The run with the median IOPS (the upper one of an even count); null without runs.
  const RowSummary* median() const;
  // The lowest and highest IOPS of the runs; (0, 0) without runs.
  std::pair<double, double> iops_range() const;
  // The IOPS of the run of `round`, if it ran.
  std::optional<double> iops_in_round(unsigned round) const;
  void add_run(unsigned round, RowSummary run);
};

class BenchTable {
 public:
  Cell& at(const std::string& row, std::uint32_t depth) { return cells_[{row, depth}]; }
  // The cell; an empty one (no runs, no reason) when it was never filled.
  const Cell& cell(const std::string& row, std::uint32_t depth) const;
  // `row`'s IOPS over `baseline`'s at `depth`, paired by round, with its interval; nullopt when
  // no round ran both.
  std::optional<RatioEstimate> ratio(const std::string& row, const std::string& baseline, std::uint32_t depth) const;
  // Of `candidates`, the row with the highest median IOPS at `depth`; nullopt when none ran.
  std::optional<std::string> fastest(const std::vector<std::string>& candidates, std::uint32_t depth) const;
  // Whether the table stopped early because TableSpec::stop_requested said so.
  bool interrupted = false;

 private:
  std::map<std::pair<std::string, std::uint32_t>, Cell> cells_;
};

// What one run of one row gives: its summary, and the errors among its completions.
struct JobOutcome {
  RowSummary summary;
  std::uint64_t errors = 0;
  int first_error = 0;
};
// Runs `row` once at `depth`, the `repeat`-th time; an error says why the row cannot run.
using RunJob = std::function<Result<JobOutcome, std::string>(const RowSpec& row, std::uint32_t depth, unsigned repeat)>;
// Told before each run (`done` counts from 1 to `total`).
using Progress = std::function<void(const RowSpec& row, std::uint32_t depth, unsigned repeat, std::size_t done,
                                    std::size_t total)>;

struct TableSpec {
  std::vector<RowSpec> rows;
  std::vector<std::uint32_t> depths;
  unsigned repeat = 1;
  // Set when the target does not poll: the IOPOLL row is unsupported, with this reason, and not run.
  std::optional<std::string> iopoll_unsupported;
  // Asked before every run; true stops the table there (the runs so far are kept).
  std::function<bool()> stop_requested;
};

BenchTable run_bench_table(const TableSpec& spec, const RunJob& run_job, const Progress& progress = {});

// The real jobs: host rows on a liburing or ringfence ring, the guest rows in a process or a KVM
// guest, fio as fio. `job` is the template (its depth and seed are set per run; the seed is
// 1 + the repeat); `target_path` is what guests and fio open.
struct JobSetup {
  JobSpec job;
  std::string target_path;
  double ramp_s = 1, runtime_s = 5;  // for fio's command line
  bool iopoll = false;               // fio: hipri, where the target polls
  LinuxGuestSetup linux_guest;       // the Linux-guest rows' image and accelerator
};
RunJob real_jobs(const JobSetup& setup);

}  // namespace rf::bench
