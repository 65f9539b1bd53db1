#include "engine/fio_job.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <optional>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "engine/child_program.h"
#include "engine/cpu_times.h"

namespace rf::bench {

namespace {
// Below this the sampled window is a few clock ticks (10 ms each): fio's own figure is kept.
constexpr double kShortestSampledRuntime = 0.5;
}  // namespace

RowSummary summarize(const JobResult& r) {
  RowSummary s;
  s.iops = r.iops();
  s.ios = r.ios;
  s.reads = r.reads;
  s.writes = r.writes;
  s.runtime_ms = std::chrono::duration<double, std::milli>(r.measured).count();
  s.p50_ns = r.latency.percentile(50);
  s.p99_ns = r.latency.percentile(99);
  s.p999_ns = r.latency.percentile(99.9);
  s.min_ns = r.latency.min();
  s.max_ns = r.latency.max();
  s.mean_ns = r.latency.mean();
  s.cpu_us_per_io = r.cpu_us_per_io();
  s.latency_bins = r.latency.bins();
  if (s.runtime_ms > 0) {
    s.usr_cpu_pct = std::chrono::duration<double, std::milli>(r.cpu_user).count() / s.runtime_ms * 100.0;
    s.sys_cpu_pct = std::chrono::duration<double, std::milli>(r.cpu_system).count() / s.runtime_ms * 100.0;
  }
  return s;
}

std::vector<std::string> fio_command(const FioJob& job) {
  std::vector<std::string> argv{"fio",
                                "--name=ringfence",
                                "--filename=" + job.target,
                                fmt::format("--size={}", job.size_bytes),
                                fmt::format("--rw={}", pattern_name(job.pattern)),
                                fmt::format("--bs={}", job.block_bytes),
                                "--direct=1",
                                "--ioengine=io_uring",
                                fmt::format("--iodepth={}", job.depth),
                                // In milliseconds: fio reads "0.5" (seconds) as 0.
                                fmt::format("--ramp_time={}ms", std::lround(job.ramp_s * 1000)),
                                fmt::format("--runtime={}ms", std::lround(job.runtime_s * 1000)),
                                "--time_based",
                                "--registerfiles=1",
                                "--fixedbufs=1",
                                "--sqthread_poll=1",
                                "--norandommap",
                                "--thread",  // one process: its CPU is the job's, SQPOLL thread and io-wq included
                                "--randrepeat=0",
                                // With sqthread_poll fio's clat is not usable (it has no submit
                                // time to start from: a mean of about 1 s was seen); its total
                                // latency, lat, is submission to completion, as ours is.
                                "--lat_percentiles=1",
                                "--output-format=json"};
  if (job.sqpoll_cpu) argv.push_back(fmt::format("--sqthread_poll_cpu={}", *job.sqpoll_cpu));
  if (job.app_cpu) argv.push_back(fmt::format("--cpus_allowed={}", *job.app_cpu));
  if (job.hipri) argv.push_back("--hipri=1");
  return argv;
}

Result<RowSummary, std::string> parse_fio_json(const std::string& text, Pattern pattern) {
  const nlohmann::json doc = nlohmann::json::parse(text, nullptr, false);
  if (doc.is_discarded() || !doc.contains("jobs") || !doc["jobs"].is_array() || doc["jobs"].empty()) {
    return unexpected(std::string("fio's output is not the JSON report expected (no jobs)"));
  }
  const nlohmann::json& job = doc["jobs"][0];
  RowSummary s;
  double runtime_ms = 0;
  // A mixed job reports reads and writes separately; the table wants their sum, and the
  // latency of the reads (fio's own summaries do the same per direction).
  for (const char* dir : {"read", "write"}) {
    if (!job.contains(dir)) continue;
    const nlohmann::json& d = job[dir];
    s.iops += d.value("iops", 0.0);
    const std::uint64_t ios = d.value("total_ios", std::uint64_t{0});
    s.ios += ios;
    (std::string(dir) == "read" ? s.reads : s.writes) = ios;
    runtime_ms = std::max(runtime_ms, d.value("runtime", 0.0));
    const bool latency_from_here = pattern == Pattern::RandWrite ? std::string(dir) == "write" : std::string(dir) == "read";
    if (latency_from_here && d.contains("lat_ns") && d["lat_ns"].contains("percentile")) {
      const nlohmann::json& p = d["lat_ns"]["percentile"];
      s.p50_ns = p.value("50.000000", std::uint64_t{0});
      s.p99_ns = p.value("99.000000", std::uint64_t{0});
      s.p999_ns = p.value("99.900000", std::uint64_t{0});
      s.min_ns = d["lat_ns"].value("min", std::uint64_t{0});
      s.max_ns = d["lat_ns"].value("max", std::uint64_t{0});
      s.mean_ns = d["lat_ns"].value("mean", 0.0);
    }
  }
  // usr_cpu and sys_cpu are percentages of one CPU over the job's runtime.
  s.runtime_ms = runtime_ms;
  s.usr_cpu_pct = job.value("usr_cpu", 0.0);
  s.sys_cpu_pct = job.value("sys_cpu", 0.0);
  const double cpu_fraction = (s.usr_cpu_pct + s.sys_cpu_pct) / 100.0;
  if (s.ios != 0) s.cpu_us_per_io = cpu_fraction * runtime_ms * 1000.0 / static_cast<double>(s.ios);
  return s;
}

Result<RowSummary, std::string> run_fio_job(const FioJob& job) {
  const std::vector<std::string> args = fio_command(job);
  // fio's usr_cpu and sys_cpu are its job thread's alone, not its SQPOLL thread's nor its io-wq
  // workers'. The table wants the host CPU each row costs, so fio runs its job as a thread of its
  // one process (--thread) and that process's CPU is sampled over the middle 80% of the measured
  // runtime (fio starts measuring a few milliseconds after it starts).
  using Clock = std::chrono::steady_clock;
  std::optional<double> cpu_rate;  // CPU-seconds per second
  std::thread sampler;
  const auto sample = [&](pid_t pid) {
    const auto ramp_end = Clock::now() + std::chrono::duration<double>(job.ramp_s);
    const auto from = ramp_end + std::chrono::duration<double>(job.runtime_s * 0.1);
    const auto to = ramp_end + std::chrono::duration<double>(job.runtime_s * 0.9);
    sampler = std::thread([pid, from, to, &cpu_rate] {
      std::this_thread::sleep_until(from);
      const auto a = process_cpu_times(pid);
      const auto a_at = Clock::now();
      std::this_thread::sleep_until(to);
      const auto b = process_cpu_times(pid);
      const double seconds = std::chrono::duration<double>(Clock::now() - a_at).count();
      if (a && b && seconds > 0) cpu_rate = std::chrono::duration<double>((*b - *a).total()).count() / seconds;
    });
  };
  auto run = run_program(args, "", job.runtime_s >= kShortestSampledRuntime ? sample : std::function<void(pid_t)>{});
  if (sampler.joinable()) sampler.join();
  if (!run) return unexpected(run.error() + " (install Debian's fio package)");
  if (run->exit_status != 0) {
    return unexpected(fmt::format("fio failed (exit status {}); its command: {}", run->exit_status, fmt::join(args, " ")));
  }
  auto summary = parse_fio_json(run->output, job.pattern);
  if (summary && cpu_rate && summary->iops > 0) summary->cpu_us_per_io = *cpu_rate * 1e6 / summary->iops;
  return summary;
}

}  // namespace rf::bench
