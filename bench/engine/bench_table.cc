#include "engine/bench_table.h"

#include <algorithm>

#include "engine/guest_job.h"
#include "engine/kvm_guest_job.h"

namespace rf::bench {

const RowSummary* Cell::median() const {
  if (runs.empty()) return nullptr;
  std::vector<const RowSummary*> sorted;
  for (const RowSummary& r : runs) sorted.push_back(&r);
  std::sort(sorted.begin(), sorted.end(), [](const RowSummary* a, const RowSummary* b) { return a->iops < b->iops; });
  return sorted[sorted.size() / 2];
}

std::pair<double, double> Cell::iops_range() const {
  if (runs.empty()) return {0, 0};
  const auto [lo, hi] = std::minmax_element(runs.begin(), runs.end(),
                                            [](const RowSummary& a, const RowSummary& b) { return a.iops < b.iops; });
  return {lo->iops, hi->iops};
}

std::optional<double> Cell::iops_in_round(unsigned round) const {
  for (std::size_t i = 0; i < runs.size() && i < rounds.size(); ++i) {
    if (rounds[i] == round) return runs[i].iops;
  }
  return std::nullopt;
}

void Cell::add_run(unsigned round, RowSummary run) {
  runs.push_back(std::move(run));
  rounds.push_back(round);
}

const Cell& BenchTable::cell(const std::string& row, std::uint32_t depth) const {
  static const Cell kEmpty;
  const auto it = cells_.find({row, depth});
  return it == cells_.end() ? kEmpty : it->second;
}

std::optional<RatioEstimate> BenchTable::ratio(const std::string& row, const std::string& baseline,
                                               std::uint32_t depth) const {
  const Cell& x = cell(row, depth);
  const Cell& y = cell(baseline, depth);
  std::vector<RoundPair> pairs;
  for (std::size_t i = 0; i < x.runs.size() && i < x.rounds.size(); ++i) {
    if (const auto b = y.iops_in_round(x.rounds[i])) pairs.push_back({x.runs[i].iops, *b});
  }
  return paired_ratio(pairs);
}

std::optional<std::string> BenchTable::fastest(const std::vector<std::string>& candidates, std::uint32_t depth) const {
  std::optional<std::string> best;
  double best_iops = 0;
  for (const std::string& name : candidates) {
    const RowSummary* m = cell(name, depth).median();
    if (m != nullptr && m->iops > best_iops) {
      best = name;
      best_iops = m->iops;
    }
  }
  return best;
}

BenchTable run_bench_table(const TableSpec& spec, const RunJob& run_job, const Progress& progress) {
  BenchTable table;
  const std::size_t total = spec.repeat * spec.depths.size() * spec.rows.size();
  std::size_t done = 0;
  for (unsigned rep = 0; rep < spec.repeat; ++rep) {
    for (std::uint32_t depth : spec.depths) {
      for (std::size_t i = 0; i < spec.rows.size(); ++i) {
        const RowSpec& row = rep % 2 == 0 ? spec.rows[i] : spec.rows[spec.rows.size() - 1 - i];
        Cell& cell = table.at(row.name, depth);
        ++done;
        if (row.host == HostRow::BareSqpollIopoll && spec.iopoll_unsupported) {
          cell.unsupported = *spec.iopoll_unsupported;
          continue;
        }
        if (spec.stop_requested && spec.stop_requested()) {
          table.interrupted = true;
          return table;
        }
        if (progress) progress(row, depth, rep, done, total);
        auto outcome = run_job(row, depth, rep);
        if (!outcome) {
          // A run that fails does not hide the repeats that succeed: the cell is unsupported only
          // if none does (below), and the command reports the failed runs of the others.
          if (cell.failed_runs++ == 0) cell.failure = std::move(outcome).error();
          continue;
        }
        if (outcome->errors != 0 && cell.errors == 0) cell.first_error = outcome->first_error;
        cell.errors += outcome->errors;
        cell.add_run(rep, std::move(outcome->summary));
      }
    }
  }
  for (const RowSpec& row : spec.rows) {
    for (std::uint32_t depth : spec.depths) {
      Cell& cell = table.at(row.name, depth);
      if (cell.runs.empty() && cell.failed_runs != 0) cell.unsupported = cell.failure;
    }
  }
  return table;
}

RunJob real_jobs(const JobSetup& setup) {
  return [setup](const RowSpec& row, std::uint32_t depth, unsigned repeat) -> Result<JobOutcome, std::string> {
    if (row.linux_guest) {
      const FioJob fio{setup.target_path, setup.job.size_bytes, setup.job.block_bytes, depth, setup.job.pattern,
                       setup.ramp_s,      setup.runtime_s,      {},                    {},    false};
      auto summary = run_linux_guest_job(*row.linux_guest, fio, setup.linux_guest);
      if (!summary) return unexpected(std::move(summary).error());
      return JobOutcome{std::move(*summary), 0, 0};
    }
    if (row.is_fio()) {
      const FioJob fio{setup.target_path, setup.job.size_bytes, setup.job.block_bytes, depth,
                       setup.job.pattern, setup.ramp_s,        setup.runtime_s,       setup.job.app_cpu,
                       setup.job.sqpoll_cpu, setup.iopoll};
      auto summary = run_fio_job(fio);
      if (!summary) return unexpected(std::move(summary).error());
      return JobOutcome{std::move(*summary), 0, 0};
    }
    JobSpec spec = setup.job;
    spec.depth = depth;
    spec.seed = 1 + repeat;
    auto result = row.host  ? run_host_job(*row.host, spec)
                  : row.kvm ? run_kvm_guest_job(*row.kvm, KvmJobSpec{spec, setup.target_path, {}})
                            : run_guest_job(*row.guest, GuestJobSpec{spec, setup.target_path, {}});
    if (!result) return unexpected(std::move(result).error());
    return JobOutcome{summarize(*result), result->errors, result->first_error};
  };
}

}  // namespace rf::bench
