#include "cli/bench_command.h"

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <optional>
#include <thread>

#include <fmt/format.h>

#include "cli/bench_scale.h"
#include "cli/bench_target.h"
#include "cli/markdown_table.h"
#include "engine/bench_table.h"
#include "engine/block_job.h"
#include "engine/fio_job.h"
#include "engine/guest_job.h"
#include "engine/json_report.h"
#include "engine/kvm_guest_job.h"
#include "engine/plot.h"
#include "host/block_device.h"
#include "kvm/kvm_vm.h"
#include "ring/iopoll_probe.h"
#include "ring/kernel_facts.h"
#include "util/mmap_region.h"
#include "util/temp_dir.h"
#include "util/unique_fd.h"

namespace rf::cli {

namespace {

// SIGINT and SIGTERM stop the table before its next run, so that what the bench made (a zram
// device, a laid-out file) is removed on the way out instead of left behind.
std::atomic<int> g_interrupted_by{0};  // the signal's number

class InterruptGuard {
 public:
  InterruptGuard() {
    struct sigaction action{};
    action.sa_handler = [](int signal) { g_interrupted_by.store(signal); };
    ::sigemptyset(&action.sa_mask);
    ::sigaction(SIGINT, &action, &old_int_);
    ::sigaction(SIGTERM, &action, &old_term_);
  }
  ~InterruptGuard() {
    ::sigaction(SIGINT, &old_int_, nullptr);
    ::sigaction(SIGTERM, &old_term_, nullptr);
  }
  InterruptGuard(const InterruptGuard&) = delete;
  InterruptGuard& operator=(const InterruptGuard&) = delete;

 private:
  struct sigaction old_int_{}, old_term_{};
};

std::string kiops(const bench::Cell& cell) {
  if (!cell.unsupported.empty()) return "unsupported";
  const bench::RowSummary* m = cell.median();
  if (m == nullptr) return "–";
  std::string text = fmt::format("{:.1f}", m->iops / 1000);
  if (cell.runs.size() > 1) {
    const auto [lo, hi] = cell.iops_range();
    text += fmt::format(" ({:.1f}–{:.1f})", lo / 1000, hi / 1000);
  }
  return text;
}

std::string micros(std::uint64_t ns) { return fmt::format("{:.1f}", static_cast<double>(ns) / 1000.0); }

// A paired ratio, with its 95% interval when there are two rounds or more.
std::string ratio_text(const bench::RatioEstimate& r) {
  if (r.pairs < 2) return fmt::format("{:.2f}", r.ratio);
  return fmt::format("{:.2f} ({:.2f}–{:.2f})", r.ratio, r.low, r.high);
}

// A table's header: `first`, then a column per iodepth.
std::vector<std::string> per_depth_header(std::string first, const std::vector<std::uint32_t>& depths) {
  std::vector<std::string> header{std::move(first)};
  for (std::uint32_t d : depths) header.push_back(fmt::format("iodepth={}", d));
  return header;
}

// The table's jobs: where they go, and the target they open.
struct BenchSetup {
  BenchPlacement where;
  const Target* target;
};

// The table: every row at every depth, repeated; then kIOPS, ratios, targets, latency, CPU.
int run_table(const BenchArgs& args, const std::vector<bench::RowSpec>& rows, const BenchSetup& setup) {
  const std::string& target_path = setup.where.target_path;
  const Target& target = *setup.target;
  const bench::Pattern pattern = setup.where.pattern;
  const std::optional<unsigned> app_cpu = setup.where.app_cpu;
  const IopollStatus iopoll = probe_iopoll(target_path);

  bench::TableSpec spec{rows, args.iodepths, args.repeat, std::nullopt, {}};
  if (!iopoll.supported) spec.iopoll_unsupported = iopoll.detail;
  spec.stop_requested = [] { return g_interrupted_by.load() != 0; };
  bench::JobSetup jobs;
  jobs.job.fd = target.fd.get();
  jobs.job.size_bytes = target.size;
  jobs.job.block_bytes = args.bs;
  jobs.job.pattern = pattern;
  jobs.job.ramp = std::chrono::milliseconds(static_cast<long>(args.ramp_s * 1000));
  jobs.job.runtime = std::chrono::milliseconds(static_cast<long>(args.runtime_s * 1000));
  jobs.job.app_cpu = app_cpu;
  jobs.job.sqpoll_cpu = setup.where.sq_cpu;
  jobs.target_path = target_path;
  jobs.ramp_s = args.ramp_s;
  jobs.runtime_s = args.runtime_s;
  jobs.iopoll = iopoll.supported;
  jobs.linux_guest.image_dir = args.guest_image.empty() ? bench::default_guest_image_dir() : args.guest_image;
  jobs.linux_guest.accel = args.accel;
  const auto per_job = args.runtime_s + args.ramp_s;
  const bench::BenchTable cells = bench::run_bench_table(
      spec, bench::real_jobs(jobs),
      [&](const bench::RowSpec& row, std::uint32_t depth, unsigned rep, std::size_t done, std::size_t total) {
        std::cerr << fmt::format("\rringfence bench: {} iodepth={} run {}/{} (about {:.0f} s left)   ", row.name, depth,
                                 rep + 1, args.repeat, per_job * static_cast<double>(total - done + 1))
                  << std::flush;
      });
  std::cerr << "\r" << std::string(78, ' ') << "\r";
  if (cells.interrupted) {
    std::cerr << fmt::format("ringfence bench: interrupted by {}; nothing is printed, and what it made is removed\n",
                             ::strsignal(g_interrupted_by.load()));
    return 128 + g_interrupted_by.load();  // as a shell reports a death by that signal
  }
  std::vector<std::string> failed_runs;  // in cells whose other runs succeeded: said after the table
  for (const bench::RowSpec& row : rows) {
    for (std::uint32_t d : args.iodepths) {
      const bench::Cell& cell = cells.cell(row.name, d);
      if (cell.errors != 0) {
        std::cerr << fmt::format("ringfence bench: {} iodepth={}: {} I/O errors (first: {})\n", row.name, d, cell.errors,
                                 std::strerror(-cell.first_error));
      }
      if (!cell.runs.empty() && cell.failed_runs != 0) {
        failed_runs.push_back(fmt::format("{} iodepth={}: {} of {} runs failed; the first: {}", row.name, d,
                                          cell.failed_runs, cell.failed_runs + cell.runs.size(), cell.failure));
      }
    }
  }

  std::cout << fmt::format("ringfence bench: rw={} bs={} ioengine=io_uring direct=1, runtime {:.1f} s after {:.1f} s "
                           "ramp, {} round(s), the rows alternating (median{})\n",
                           args.rw, args.bs, args.runtime_s, args.ramp_s, args.repeat,
                           args.repeat > 1 ? ", with min–max" : "");
  std::cout << fmt::format("target: {}; kernel {}; {} CPUs{}\n", target.description, kernel_release(), setup.where.cpus,
                           app_cpu ? "; application or guest (vCPU) on CPU 0, SQPOLL thread or mediator on CPU 1" : "");
  std::cout << fmt::format("target kind: {}\n", target.kind);
  if (std::any_of(rows.begin(), rows.end(), [](const bench::RowSpec& r) { return r.kvm.has_value(); })) {
    std::cout << fmt::format("KVM rows: KVM module {}\n", kvm::kvm_module_description());
  }
  if (std::any_of(rows.begin(), rows.end(), [](const bench::RowSpec& r) { return r.linux_guest.has_value(); })) {
    std::cout << fmt::format("Linux-guest rows: {}; fio in the guest (io_uring; --hipri on rfblk's poll queue), a boot per "
                             "run; CPU is the back-end's and QEMU's{}\n",
                             bench::linux_guest_description(jobs.linux_guest),
                             args.accel == "tcg" ? ". Under TCG the guest's emulation bounds the IOPS: the ratios mostly count "
                                                   "guest instructions and notifications per I/O (docs/linux-guest.md)"
                                                 : "");
  }
  std::cout << "\n";

  MarkdownTable table(per_depth_header("kIOPS", args.iodepths));
  for (const bench::RowSpec& row : rows) {
    std::vector<std::string> line{row.name};
    for (std::uint32_t d : args.iodepths) line.push_back(kiops(cells.cell(row.name, d)));
    table.add_row(std::move(line));
  }
  std::cout << table.render() << "\n";

  MarkdownTable ratios(per_depth_header("row / baseline", args.iodepths));
  std::vector<bench::ReportRatio> report_ratios;  // for --json
  for (const bench::RowSpec& row : rows) {
    if (row.baseline.empty()) continue;
    std::vector<std::string> line{fmt::format("{} / {}", row.name, row.baseline)};
    bool any = false;
    for (std::uint32_t d : args.iodepths) {
      const auto r = cells.ratio(row.name, row.baseline, d);
      line.push_back(r ? ratio_text(*r) : "–");
      if (r) report_ratios.push_back({row.name, row.baseline, d, *r, "", ""});
      any = any || r.has_value();
    }
    if (any) ratios.add_row(std::move(line));  // not for a row whose baseline is not in the table
  }
  if (ratios.rows() != 0) {
    std::cout << fmt::format("Each row relative to its baseline at the same iodepth (the geometric mean of the rounds' "
                             "ratios{}):\n\n",
                             args.repeat > 1 ? ", with its 95% interval" : "; one round has no interval: --repeat 5")
              << ratios.render() << "\n";
  }

  // The targets whose two rows both ran: the ratio at each depth, met or missed.
  MarkdownTable targets(per_depth_header("target", args.iodepths));
  const std::vector<std::string> host_rows = bench::best_host_candidates();
  for (const bench::PerformanceTarget& t : bench::performance_targets()) {
    std::vector<std::string> line{std::string(t.text)};
    bool any = false;
    for (std::uint32_t d : args.iodepths) {
      const bool against_best = t.denominator == bench::kBestHostRow;
      const auto denominator = against_best ? cells.fastest(host_rows, d) : std::optional(std::string(t.denominator));
      const auto r = denominator ? cells.ratio(std::string(t.numerator), *denominator, d) : std::nullopt;
      if (!r || !t.applies_at(d)) {
        line.push_back("–");
        continue;
      }
      any = true;
      const std::string_view verdict = bench::verdict_name(t.verdict(*r));
      line.push_back(fmt::format("{} {}{}", ratio_text(*r), verdict, against_best ? fmt::format(" ({})", *denominator) : ""));
      report_ratios.push_back({std::string(t.numerator), *denominator, d, *r, std::string(t.text), std::string(verdict)});
    }
    if (any) targets.add_row(std::move(line));
  }
  if (targets.rows() != 0) {
    std::cout << "Targets (the paired ratio and its 95% interval; met or MISSED when the whole interval is on one side "
                 "of the bound, undecided when it straddles it or one round gave no interval; the best host row is "
                 "named):\n\n"
              << targets.render() << "\n";
  }

  MarkdownTable efficiency(per_depth_header("kIOPS per CPU-second", args.iodepths));
  for (const bench::RowSpec& row : rows) {
    std::vector<std::string> line{row.name};
    for (std::uint32_t d : args.iodepths) {
      const bench::RowSummary* m = cells.cell(row.name, d).median();
      const double e = m != nullptr ? m->iops_per_cpu_second() : 0;
      line.push_back(e > 0 ? fmt::format("{:.1f}", e / 1000) : "–");
    }
    efficiency.add_row(std::move(line));
  }
  std::cout << "Efficiency: thousands of I/Os per second of host CPU (the median run; every thread of the row's "
               "processes: SQPOLL threads, io-wq workers, device threads, mediators, the guest, and QEMU for the "
               "Linux-guest rows):\n\n"
            << efficiency.render() << "\n";

  MarkdownTable latency({"row", "iodepth", "clat p50 µs", "p99 µs", "p99.9 µs", "CPU µs per I/O", "I/Os"});
  for (const bench::RowSpec& row : rows) {
    for (std::uint32_t d : args.iodepths) {
      const bench::Cell& cell = cells.cell(row.name, d);
      const bench::RowSummary* m = cell.median();
      if (m == nullptr) {
        latency.add_row({row.name, std::to_string(d), cell.unsupported.empty() ? "–" : "unsupported", "", "", "", ""});
        continue;
      }
      latency.add_row({row.name, std::to_string(d), micros(m->p50_ns), micros(m->p99_ns), micros(m->p999_ns),
                       fmt::format("{:.2f}", m->cpu_us_per_io), std::to_string(m->ios)});
    }
  }
  std::cout << "Completion latency and CPU (the median run):\n\n" << latency.render() << "\n";

  if (!args.json_path.empty()) {
    std::vector<bench::ReportCell> report_cells;
    for (const bench::RowSpec& row : rows) {
      for (std::uint32_t d : args.iodepths) {
        const bench::Cell& cell = cells.cell(row.name, d);
        std::vector<double> round_iops;
        for (const bench::RowSummary& run : cell.runs) round_iops.push_back(run.iops);
        report_cells.push_back({row.name, d, cell.median(), cell.unsupported, std::move(round_iops)});
      }
    }
    const bench::ReportHeader report_header{args.version, pattern,      args.bs,    args.ramp_s,
                                            args.runtime_s, target_path, target.kind};
    std::ofstream out(args.json_path);
    out << bench::fio_shaped_report(report_header, report_cells, report_ratios).dump(2) << "\n";
    if (!out) {
      std::cerr << fmt::format("ringfence bench: cannot write {}: {}\n", args.json_path, std::strerror(errno));
      return 1;
    }
  }

  if (!args.plot_path.empty()) {
    bench::PlotInput plot{fmt::format("ringfence bench: rw={} bs={}, {}", args.rw, args.bs, target.description),
                          args.iodepths, {}};
    for (const bench::RowSpec& row : rows) {
      const bool ran = std::any_of(args.iodepths.begin(), args.iodepths.end(),
                                   [&](std::uint32_t d) { return cells.cell(row.name, d).median() != nullptr; });
      if (!ran) continue;  // an unsupported row has no line to draw
      bench::PlotSeries series{row.name, {}, {}, {}, {}};
      for (std::uint32_t d : args.iodepths) {
        const bench::Cell& cell = cells.cell(row.name, d);
        const bench::RowSummary* m = cell.median();
        const auto [lo, hi] = cell.iops_range();
        series.median_kiops.push_back(m != nullptr ? m->iops / 1000 : 0);
        series.min_kiops.push_back(lo / 1000);
        series.max_kiops.push_back(hi / 1000);
        series.kiops_per_cpu_second.push_back(m != nullptr ? m->iops_per_cpu_second() / 1000 : 0);
      }
      plot.series.push_back(std::move(series));
    }
    if (auto drawn = bench::draw_plot(plot, args.plot_path); !drawn) {
      std::cerr << "ringfence bench: " << drawn.error() << "\n";
      return 1;
    }
  }

  bool any_unsupported = false;
  for (const bench::RowSpec& row : rows) {
    const bench::Cell& cell = cells.cell(row.name, args.iodepths.front());
    if (!cell.unsupported.empty()) {
      std::cout << fmt::format("{}: unsupported: {}\n", row.name, cell.unsupported);
      any_unsupported = true;
    }
  }
  if (any_unsupported) std::cout << "\n";
  for (const std::string& line : failed_runs) std::cout << "failed runs: " << line << "\n";
  if (!failed_runs.empty()) std::cout << "\n";
  return 0;
}

}  // namespace

int run_bench(const BenchArgs& args) {
  const auto pattern = bench::pattern_from_name(args.rw);
  if (!pattern) {
    std::cerr << fmt::format("ringfence bench: --rw {}: use randread, randwrite or randrw\n", args.rw);
    return 2;
  }
  std::vector<bench::RowSpec> rows;
  const bool no_table = args.rows.size() == 1 && args.rows.front() == "none";
  for (const std::string& name : no_table ? std::vector<std::string>{} : args.rows) {
    const auto row = bench::row_from_name(name);
    if (!row) {
      std::cerr << fmt::format("ringfence bench: --rows: unknown row {} (rows: {}; or none)\n", name, bench::row_names());
      return 2;
    }
    rows.push_back(*row);
  }
  if (rows.empty() && !args.scale) {
    std::cerr << "ringfence bench: --rows none leaves nothing to run: add --scale, or name some rows\n";
    return 2;
  }
  const bool writes = *pattern != bench::Pattern::RandRead;

  const InterruptGuard interrupts;  // until the bench returns, whatever it made removed on the way
  TempDir dir("ringfence-bench");
  std::string target_path = args.target;
  std::unique_ptr<ZramTarget> zram;  // declared before the target: its descriptor closes first
  if (target_path == "zram") {
    std::cerr << fmt::format("ringfence bench: making a {} MiB zram device and filling it with random data\n",
                             args.size >> 20);
    auto made = ZramTarget::create(args.size);
    if (!made) {
      std::cerr << "ringfence bench: " << made.error() << "\n";
      return 1;
    }
    zram = std::move(*made);
    target_path = zram->path();
  } else if (target_path.empty()) {
    if (dir.path().empty()) {
      std::cerr << "ringfence bench: cannot create a temporary directory: " << std::strerror(errno) << "\n";
      return 1;
    }
    target_path = dir.path() + "/target";
    std::cerr << fmt::format("ringfence bench: laying out a {} MiB file in {}\n", args.size >> 20, dir.path());
    if (auto laid = lay_out(target_path, args.size); !laid) {
      std::cerr << "ringfence bench: " << laid.error() << "\n";
      return 1;
    }
  }
  auto target = open_target(target_path, writes);
  if (!target) {
    std::cerr << "ringfence bench: " << target.error() << "\n";
    return 1;
  }
  if (target->size < args.bs) {
    std::cerr << fmt::format("ringfence bench: target {} is smaller than one block ({} bytes)\n", target_path, args.bs);
    return 1;
  }

  // Pinning: the submitting thread on CPU 0, the SQPOLL thread on CPU 1, for every row alike.
  const unsigned cpus = std::thread::hardware_concurrency();
  std::optional<unsigned> app_cpu, sq_cpu;
  if (cpus >= 2) {
    app_cpu = 0;
    sq_cpu = 1;
  } else {
    std::cerr << "ringfence bench: warning: fewer than 2 CPUs; the SQPOLL thread or mediator shares a CPU with the application or guest\n";
  }
  const BenchSetup setup{{*pattern, target_path, cpus, app_cpu, sq_cpu}, &*target};
  if (!rows.empty()) {
    if (const int status = run_table(args, rows, setup); status != 0) return status;
  }
  if (args.scale) return run_scale(args, setup.where);
  return 0;
}

}  // namespace rf::cli
