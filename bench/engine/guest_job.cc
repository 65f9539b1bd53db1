#include "engine/guest_job.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <optional>
#include <vector>

#include <fmt/format.h>

#include "engine/cpu_times.h"
#include "engine/scoped_pin.h"
#include "guest/bench_workload.h"
#include "guest/workload.h"
#include "sandbox/process_sandbox.h"
#include "util/cycle_counter.h"

namespace rf::bench {

namespace {

using Clock = std::chrono::steady_clock;

// The VMM's view of one instant: its clock, the cycle counter, and the CPU both sides used.
struct Snapshot {
  Clock::time_point clock;
  unsigned long long cycles = 0;
  CpuTimes vmm;
  CpuTimes guest;
};

std::optional<Snapshot> snapshot(pid_t guest) {
  Snapshot s;
  s.vmm = own_cpu_times();
  const auto guest_cpu = process_cpu_times(guest);
  if (!guest_cpu) return std::nullopt;
  s.guest = *guest_cpu;
  s.clock = Clock::now();
  s.cycles = read_cycle_counter();
  return s;
}

std::string guest_failure(const GuestExitStatus& exit, const std::optional<guest::ProcessReport>& report) {
  std::string text = fmt::format("the guest {}", exit.describe());
  if (report) {
    text += fmt::format(" (bench status: {}", guest::bench_status_name(report->bench.status));
    if (report->bench.status == guest::BenchStatus::Refused) {
      text += fmt::format(", {}", guest::request_status_name(report->bench.first_refusal));
    }
    text += ")";
  }
  return text;
}

// Lets the guest run for `period`; an error if it ended meanwhile or cannot be waited for.
Result<void, std::string> let_run(GuestProcess& guest, ProcessSandbox& sandbox, std::chrono::milliseconds period) {
  auto ended = guest.wait(period);
  if (ended) return unexpected(guest_failure(*ended, sandbox.report()) + " before the run was over");
  if (ended.error().code != GuestProcessErrc::Timeout) return unexpected(ended.error().message);
  return {};
}

// The guest's latency histogram (ticks, at the start of its scratch memory), copied out once and
// converted to nanoseconds at each bucket's upper bound.
// GUEST-CONTROLLED: any counts at all; they are only added up and displayed.
LatencyHistogram guest_latency(ProcessSandbox& sandbox, double ticks_per_ns) {
  LatencyHistogram histogram;
  auto span = sandbox.memory().translate(sandbox.scratch(), guest::kBenchHistogramBytes, DeviceAccess::ReadsGuest);
  if (!span) return histogram;
  std::vector<std::uint64_t> counts(buckets::kCount);
  std::memcpy(counts.data(), span->host, guest::kBenchHistogramBytes);
  for (unsigned b = 0; b < buckets::kCount; ++b) {
    if (counts[b] == 0) continue;
    const double ns = static_cast<double>(buckets::upper_bound_of(b)) / ticks_per_ns;
    histogram.record(ns >= 1.8e19 ? UINT64_MAX : static_cast<std::uint64_t>(ns), counts[b]);
  }
  return histogram;
}

}  // namespace

std::string_view guest_row_name(GuestRow row) {
  switch (row) {
    case GuestRow::Passthrough: return "passthrough";
    case GuestRow::Mediated: return "mediated";
  }
  return "?";
}

Result<JobResult, std::string> run_guest_job(GuestRow row, const GuestJobSpec& spec) {
  const JobSpec& job = spec.job;
  if (!kHaveCycleCounter) return unexpected(std::string("the guest needs a cycle counter (x86-64 or AArch64) to time I/O"));
  if (job.depth == 0 || job.depth > guest::kWorkloadMaxDepth) {
    return unexpected(fmt::format("the guest rows keep 1 to {} I/Os in flight", guest::kWorkloadMaxDepth));
  }
  DiskOptions disk_options;
  disk_options.read_only = job.pattern == Pattern::RandRead;
  disk_options.offset_bound = OffsetBound::None;  // as the host rows: the target itself
  auto disk = Disk::open(spec.target, disk_options);
  if (!disk) return unexpected(disk.error().message);
  if (job.block_bytes % disk->logical_block_size() != 0 || disk->size_bytes() < job.block_bytes) {
    return unexpected(fmt::format("{}: the block size must be a multiple of its logical block size ({}) and no larger "
                                  "than the disk", spec.target, disk->logical_block_size()));
  }

  guest::BenchConfig bench_config;
  bench_config.block_bytes = job.block_bytes;
  bench_config.depth = job.depth;
  SandboxConfig config;
  config.mode = row == GuestRow::Passthrough ? abi::Mode::Passthrough : abi::Mode::Mediated;
  const unsigned queue_depth = std::bit_ceil(std::max(job.depth, 8u));
  config.passthrough.queue_depth = queue_depth;
  config.passthrough.sqpoll_cpu = job.sqpoll_cpu;
  config.mediated.queue_depth = queue_depth;
  config.mediated.mediator.cpu = job.sqpoll_cpu;
  // The report and control pages and the device window fit in the first 2 MiB; the scratch
  // memory starts at the next 2 MiB boundary after the window.
  constexpr std::uint64_t kTwoMiB = 2ull << 20;
  config.ram_bytes = 2 * kTwoMiB + (guest::bench_scratch_bytes(bench_config) + kTwoMiB - 1) / kTwoMiB * kTwoMiB;
  if (!spec.guest_binary.empty()) config.guest_binary = spec.guest_binary;
  std::vector<Disk> disks;
  disks.push_back(std::move(*disk));
  auto sandbox = ProcessSandbox::create(std::move(disks), config);
  if (!sandbox) return unexpected(sandbox.error().message);

  std::vector<std::string> args{"--scenario", "bench", "--rw", std::string(pattern_name(job.pattern)), "--bs",
                                std::to_string(job.block_bytes), "--depth", std::to_string(job.depth), "--seed",
                                std::to_string(job.seed), "--poll"};
  std::optional<GuestProcess> guest;
  {
    const ScopedPin pin(job.app_cpu);  // the guest inherits it
    auto spawned = sandbox->spawn(std::move(args));
    if (!spawned) return unexpected(spawned.error().message);
    guest.emplace(std::move(*spawned));
  }

  RF_TRY_VOID(let_run(*guest, *sandbox, job.ramp));
  const auto start = snapshot(guest->pid());
  sandbox->set_bench_phase(guest::BenchPhase::Measure);
  RF_TRY_VOID(let_run(*guest, *sandbox, job.runtime));
  const auto end = snapshot(guest->pid());
  sandbox->set_bench_phase(guest::BenchPhase::Stop);
  auto exit = guest->wait(std::chrono::seconds(30));
  if (!exit) return unexpected(fmt::format("the guest did not stop: {}", exit.error().message));
  const auto report = sandbox->report();
  if (!exit->exited || exit->code != 0 || !report || report->bench.status != guest::BenchStatus::Ok) {
    return unexpected(guest_failure(*exit, report));
  }
  if (!start || !end) return unexpected(std::string("cannot read the guest's CPU time from /proc"));

  // GUEST-CONTROLLED: the report. The guest saw Measure after `start` and Stop after `end`, so its
  // window must start after ours did and have a positive length.
  const guest::BenchReport& b = report->bench;
  const double elapsed_ns = static_cast<double>(std::chrono::nanoseconds(end->clock - start->clock).count());
  if (end->cycles <= start->cycles || elapsed_ns <= 0 || b.ticks_start < start->cycles || b.ticks_end <= b.ticks_start) {
    return unexpected(std::string("the guest's timing is inconsistent with the VMM's cycle counter"));
  }
  const double ticks_per_ns = static_cast<double>(end->cycles - start->cycles) / elapsed_ns;
  JobResult result;
  result.ios = b.ios;
  result.reads = b.reads;
  result.writes = b.writes;
  result.errors = b.errors;
  result.first_error = b.first_error;
  result.measured = std::chrono::nanoseconds(static_cast<long long>(static_cast<double>(b.ticks_end - b.ticks_start) /
                                                                    ticks_per_ns));
  const CpuTimes used = (end->vmm - start->vmm) + (end->guest - start->guest);
  result.cpu_user = used.user;
  result.cpu_system = used.system;
  result.cpu = used.total();
  result.latency = guest_latency(*sandbox, ticks_per_ns);
  return result;
}

}  // namespace rf::bench
