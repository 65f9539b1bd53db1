#include "engine/kvm_guest_job.h"

#include <bit>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "engine/cpu_times.h"
#include "engine/guest_timing.h"
#include "engine/scoped_pin.h"
#include "guest/workload.h"
#include "kvm/kvm_machine.h"
#include "util/cycle_counter.h"

namespace rf::bench {

namespace {

// How far the guest's TSC may drift from the host's over a run (the offset is read before and
// after it): each reading is uncertain by an ioctl's time, a few microseconds (thousands of ticks).
constexpr std::int64_t kMaxTscDriftTicks = 1'000'000;

guest::BenchPattern guest_pattern(Pattern pattern) {
  switch (pattern) {
    case Pattern::RandRead: return guest::BenchPattern::RandRead;
    case Pattern::RandWrite: return guest::BenchPattern::RandWrite;
    case Pattern::RandRW: return guest::BenchPattern::RandRW;
  }
  return guest::BenchPattern::RandRead;
}

std::string outcome_failure(const kvm::GuestOutcome& outcome) {
  std::string text = "the KVM guest " + outcome.describe();
  if (outcome.report) text += fmt::format(" ({})", bench_status_text(outcome.report->bench));
  if (!outcome.log.empty()) text += fmt::format("; its last log line: {}", outcome.log.back());
  return text;
}

// Sleeps for `period`, then an error if the guest has ended (it runs until told to stop).
Result<void, std::string> let_run(kvm::KvmMachine& machine, std::chrono::milliseconds period) {
  std::this_thread::sleep_for(period);
  if (machine.guest_running()) return {};
  return unexpected(outcome_failure(machine.finish_boot(std::chrono::milliseconds(0))) + " before the run was over");
}

}  // namespace

std::string_view kvm_row_name(GuestRow row) {
  switch (row) {
    case GuestRow::Passthrough: return "kvm-passthrough";
    case GuestRow::PassthroughSqpoll: return "kvm-passthrough-sqpoll";
    case GuestRow::Mediated: return "kvm-mediated";
  }
  return "?";
}

Result<JobResult, std::string> run_kvm_guest_job(GuestRow row, const KvmJobSpec& spec) {
  const JobSpec& job = spec.job;
  if (!kHaveCycleCounter) return unexpected(std::string("the KVM rows need an x86-64 host"));
  if (job.depth == 0 || job.depth > guest::kWorkloadMaxDepth) {
    return unexpected(fmt::format("the guest rows keep 1 to {} I/Os in flight", guest::kWorkloadMaxDepth));
  }
  guest::BenchConfig bench_config;
  bench_config.block_bytes = job.block_bytes;
  bench_config.depth = job.depth;

  kvm::MachineConfig config;
  config.mode = row == GuestRow::Mediated ? RF_MODE_MEDIATED : RF_MODE_PASSTHROUGH;
  config.kernel_sqpoll = row == GuestRow::PassthroughSqpoll;
  config.disk_path = spec.target;
  // As the other guest rows: the target itself, not a loop device over it (docs/benchmarks.md).
  config.disk_flags = RF_DISK_UNBOUNDED_FILE | (job.pattern == Pattern::RandRead ? RF_DISK_READ_ONLY : 0);
  config.queue_depth = std::bit_ceil(std::max(job.depth, 8u));
  config.device_cpu = job.sqpoll_cpu;
  config.guest_image = spec.guest_image.empty() ? kvm::default_kvm_guest_image() : spec.guest_image;
  // The first 2 MiB hold the VMM's pages and the image, the next the device window; the bench's
  // histogram and data blocks go in the scratch memory after it.
  const std::uint64_t scratch = guest::bench_scratch_bytes(bench_config);
  config.ram_bytes = 2 * kvm::kLargePage + (scratch + kvm::kLargePage - 1) / kvm::kLargePage * kvm::kLargePage;
  auto machine = kvm::KvmMachine::create(config);
  if (!machine) return unexpected(machine.error().message);
  if (job.block_bytes % machine->disk_block_bytes() != 0 || machine->disk_bytes() < job.block_bytes) {
    return unexpected(fmt::format("{}: the block size must be a multiple of its logical block size ({}) and no larger "
                                  "than the disk", spec.target, machine->disk_block_bytes()));
  }

  kvm::BootInfo info = machine->boot_info(kvm::Scenario::Bench);
  info.seed = job.seed;
  info.depth = job.depth;
  info.block_bytes = job.block_bytes;
  info.pattern = static_cast<std::uint32_t>(guest_pattern(job.pattern));
  auto ahead_before = machine->guest_tsc_ahead();
  if (!ahead_before) return unexpected(ahead_before.error().message);
  {
    const ScopedPin pin(job.app_cpu);  // the vCPU thread inherits it
    if (auto started = machine->start_boot(info); !started) return unexpected(started.error().message);
  }
  RF_TRY_VOID(let_run(*machine, job.ramp));
  const PhaseMark measure = mark_phase(own_cpu_times());
  machine->set_bench_phase(guest::BenchPhase::Measure);
  RF_TRY_VOID(let_run(*machine, job.runtime));
  const PhaseMark stop = mark_phase(own_cpu_times());
  machine->set_bench_phase(guest::BenchPhase::Stop);

  const kvm::GuestOutcome outcome = machine->finish_boot(std::chrono::seconds(30));
  if (!outcome.ok() || !outcome.report || outcome.report->bench.status != guest::BenchStatus::Ok) {
    return unexpected(outcome_failure(outcome));
  }
  auto ahead_after = machine->guest_tsc_ahead();
  if (!ahead_after) return unexpected(ahead_after.error().message);
  // Modulo 2^64 like the offsets themselves, which sit either side of zero on some hosts.
  const auto drift = static_cast<std::int64_t>(*ahead_after - *ahead_before);
  if (drift > kMaxTscDriftTicks || drift < -kMaxTscDriftTicks) {
    return unexpected(fmt::format("the guest's TSC moved against the host's by {} ticks during the run, so its "
                                  "ticks cannot be turned into time", drift));
  }
  // GUEST-CONTROLLED: the histogram at the start of the scratch memory; copied out once.
  std::vector<std::uint64_t> histogram(buckets::kCount);
  if (!machine->read_guest(machine->scratch_gpa(), std::as_writable_bytes(std::span(histogram)))) {
    return unexpected(std::string("the guest's latency histogram is not in its RAM"));
  }
  return bench_job_result(outcome.report->bench, histogram, measure, stop, *ahead_before);
}

}  // namespace rf::bench
