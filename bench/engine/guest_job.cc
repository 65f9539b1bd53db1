#include "engine/guest_job.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <optional>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "engine/cpu_times.h"
#include "engine/guest_timing.h"
#include "engine/scoped_pin.h"
#include "guest/bench_workload.h"
#include "guest/workload.h"
#include "passthrough/passthrough_device.h"
#include "sandbox/process_sandbox.h"
#include "util/cycle_counter.h"

namespace rf::bench {

namespace {

// The target as the guest rows register it: as it is, like the host rows (no loop device), and
// read-only unless the pattern writes.
Result<Disk, DiskError> open_guest_target(const std::string& target, Pattern pattern) {
  DiskOptions options;
  options.read_only = pattern == Pattern::RandRead;
  options.offset_bound = OffsetBound::None;
  return Disk::open(target, options);
}

std::string guest_failure(const GuestExitStatus& exit, const std::optional<guest::ProcessReport>& report) {
  std::string text = fmt::format("the guest {}", exit.describe());
  if (report) text += fmt::format(" ({})", bench_status_text(report->bench));
  return text;
}

}  // namespace

std::string_view guest_row_name(GuestRow row) {
  switch (row) {
    case GuestRow::Passthrough: return "passthrough";
    case GuestRow::PassthroughSqpoll: return "passthrough-sqpoll";
    case GuestRow::Mediated: return "mediated";
  }
  return "?";
}

Result<std::unique_ptr<GuestBench>, std::string> GuestBench::start(GuestRow row, const GuestJobSpec& spec,
                                                                   const GuestBench* share_sqpoll) {
  const JobSpec& job = spec.job;
  if (!kHaveCycleCounter) return unexpected(std::string("the guest needs a cycle counter (x86-64 or AArch64) to time I/O"));
  if (job.depth == 0 || job.depth > guest::kWorkloadMaxDepth) {
    return unexpected(fmt::format("the guest rows keep 1 to {} I/Os in flight", guest::kWorkloadMaxDepth));
  }
  if (share_sqpoll != nullptr &&
      (row != GuestRow::PassthroughSqpoll || share_sqpoll->sandbox_->passthrough() == nullptr ||
       share_sqpoll->sandbox_->passthrough()->submitter() != PassthroughSubmitter::KernelSqpoll)) {
    return unexpected(std::string("only passthrough-sqpoll guests have an SQPOLL thread to share"));
  }
  auto disk = spec.shared_disk != nullptr ? spec.shared_disk->duplicate() : open_guest_target(spec.target, job.pattern);
  if (!disk) return unexpected(disk.error().message);
  if (job.block_bytes % disk->logical_block_size() != 0 || disk->size_bytes() < job.block_bytes) {
    return unexpected(fmt::format("{}: the block size must be a multiple of its logical block size ({}) and no larger "
                                  "than the disk", spec.target, disk->logical_block_size()));
  }

  guest::BenchConfig bench_config;
  bench_config.block_bytes = job.block_bytes;
  bench_config.depth = job.depth;
  SandboxConfig config;
  config.mode = row == GuestRow::Mediated ? abi::Mode::Mediated : abi::Mode::Passthrough;
  config.passthrough.submitter =
      row == GuestRow::PassthroughSqpoll ? PassthroughSubmitter::KernelSqpoll : PassthroughSubmitter::DeviceThread;
  const unsigned queue_depth = std::bit_ceil(std::max(job.depth, 8u));
  config.passthrough.queue_depth = queue_depth;
  config.passthrough.cpu = job.sqpoll_cpu;
  if (share_sqpoll != nullptr) config.passthrough.share_sqpoll_with = share_sqpoll->sandbox_->passthrough();
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

  std::unique_ptr<GuestBench> bench(new GuestBench);
  bench->sandbox_ = std::make_unique<ProcessSandbox>(std::move(*sandbox));
  std::vector<std::string> args{"--scenario", "bench", "--rw", std::string(pattern_name(job.pattern)), "--bs",
                                std::to_string(job.block_bytes), "--depth", std::to_string(job.depth), "--seed",
                                std::to_string(job.seed)};
  if (spec.poll) args.emplace_back("--poll");
  const ScopedPin pin(job.app_cpu);  // the guest inherits it
  auto spawned = bench->sandbox_->spawn(std::move(args));
  if (!spawned) return unexpected(spawned.error().message);
  bench->guest_ = std::make_unique<GuestProcess>(std::move(*spawned));
  return bench;
}

// Members go in reverse order: the guest is killed and reaped before its device and RAM.
GuestBench::~GuestBench() = default;

Result<void, std::string> GuestBench::check_running() {
  auto ended = guest_->wait(std::chrono::milliseconds(0));
  if (ended) return unexpected(guest_failure(*ended, sandbox_->report()) + " before the run was over");
  if (ended.error().code != GuestProcessErrc::Timeout) return unexpected(ended.error().message);
  return {};
}

void GuestBench::measure() {
  measure_mark_ = mark_phase(process_cpu_times(guest_->pid()));
  sandbox_->set_bench_phase(guest::BenchPhase::Measure);
}

void GuestBench::stop() {
  stop_mark_ = mark_phase(process_cpu_times(guest_->pid()));
  sandbox_->set_bench_phase(guest::BenchPhase::Stop);
}

Result<JobResult, std::string> GuestBench::result() {
  auto exit = guest_->wait(std::chrono::seconds(30));
  if (!exit) return unexpected(fmt::format("the guest did not stop: {}", exit.error().message));
  const auto report = sandbox_->report();
  if (!exit->exited || exit->code != 0 || !report || report->bench.status != guest::BenchStatus::Ok) {
    return unexpected(guest_failure(*exit, report));
  }
  // GUEST-CONTROLLED: the histogram, at the start of the scratch memory; copied out once.
  std::vector<std::uint64_t> histogram(buckets::kCount);
  auto span = sandbox_->memory().translate(sandbox_->scratch(), guest::kBenchHistogramBytes, DeviceAccess::ReadsGuest);
  if (span) std::memcpy(histogram.data(), span->host, guest::kBenchHistogramBytes);
  return bench_job_result(report->bench, histogram, measure_mark_, stop_mark_);
}

namespace {

// Lets the guests run for `period`; an error if one of them ended meanwhile.
Result<void, std::string> let_run(const std::vector<std::unique_ptr<GuestBench>>& guests,
                                  std::chrono::milliseconds period) {
  std::this_thread::sleep_for(period);
  for (const auto& g : guests) RF_TRY_VOID(g->check_running());
  return {};
}

// Ramp, measure, stop, for all of `guests` together; the VMM's CPU time over the window.
Result<FleetResult, std::string> run_together(const std::vector<std::unique_ptr<GuestBench>>& guests,
                                              const JobSpec& job) {
  RF_TRY_VOID(let_run(guests, job.ramp));
  const CpuTimes vmm_start = own_cpu_times();
  for (const auto& g : guests) g->measure();
  RF_TRY_VOID(let_run(guests, job.runtime));
  for (const auto& g : guests) g->stop();
  FleetResult fleet;
  fleet.vmm_cpu = own_cpu_times() - vmm_start;
  for (const auto& g : guests) {
    auto r = g->result();
    if (!r) return unexpected(std::move(r).error());
    fleet.guests.push_back(std::move(*r));
  }
  return fleet;
}

}  // namespace

Result<JobResult, std::string> run_guest_job(GuestRow row, const GuestJobSpec& spec) {
  std::vector<std::unique_ptr<GuestBench>> guests;
  auto bench = GuestBench::start(row, spec);
  if (!bench) return unexpected(std::move(bench).error());
  guests.push_back(std::move(*bench));
  auto fleet = run_together(guests, spec.job);
  if (!fleet) return unexpected(std::move(fleet).error());
  JobResult result = std::move(fleet->guests.front());
  result.cpu_user += fleet->vmm_cpu.user;
  result.cpu_system += fleet->vmm_cpu.system;
  result.cpu += fleet->vmm_cpu.total();
  return result;
}

double FleetResult::total_iops() const {
  double total = 0;
  for (const JobResult& g : guests) total += g.iops();
  return total;
}

double FleetResult::cpu_us_per_io() const {
  std::chrono::nanoseconds cpu = vmm_cpu.total();
  std::uint64_t ios = 0;
  for (const JobResult& g : guests) {
    cpu += g.cpu;
    ios += g.ios;
  }
  return ios == 0 ? 0.0 : std::chrono::duration<double, std::micro>(cpu).count() / static_cast<double>(ios);
}

Result<FleetResult, std::string> run_guest_fleet(const GuestJobSpec& spec, unsigned guests, bool share_sqpoll) {
  // One disk for all of them: each guest's device takes its own handle on it.
  auto disk = open_guest_target(spec.target, spec.job.pattern);
  if (!disk) return unexpected(disk.error().message);
  std::vector<std::unique_ptr<GuestBench>> fleet;
  for (unsigned i = 0; i < guests; ++i) {
    GuestJobSpec own = spec;
    own.shared_disk = &*disk;
    own.job.seed = spec.job.seed + i;  // different offsets per guest
    auto bench = GuestBench::start(GuestRow::PassthroughSqpoll, own, share_sqpoll && i > 0 ? fleet.front().get() : nullptr);
    if (!bench) return unexpected(fmt::format("guest {}: {}", i + 1, bench.error()));
    fleet.push_back(std::move(*bench));
  }
  return run_together(fleet, spec.job);
}

}  // namespace rf::bench
