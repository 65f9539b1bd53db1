// Turning a bench guest's report (guest::BenchReport: I/O counts, its cycle-counter window and a
// latency histogram in ticks) into a JobResult the table can use. Shared by the process-guest
// rows (guest_job.h) and the KVM rows (kvm_guest_job.h).
//
// The guest counts ticks of its own cycle counter. The VMM notes its clock and its own counter
// when it flips the phase to Measure and to Stop: the ratio of the two gives ticks per
// nanosecond, and the guest's window must lie after each flip. A process guest reads the host's
// counter; a KVM guest reads its own TSC, which runs at the host's rate from a different origin
// (`guest_ticks_ahead`: the guest's counter minus the host's).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "engine/block_job.h"
#include "engine/cpu_times.h"
#include "guest/bench_workload.h"
#include "util/result.h"

namespace rf::bench {

// The VMM's clock, counter and CPU time at one phase flip.
struct PhaseMark {
  std::chrono::steady_clock::time_point clock;
  unsigned long long cycles = 0;
  std::optional<CpuTimes> cpu;
};
PhaseMark mark_phase(std::optional<CpuTimes> cpu);

// "bench status: ok", or "bench status: the driver refused a request, <why>": for messages.
std::string bench_status_text(const guest::BenchReport& report);

// GUEST-CONTROLLED: `report` and `histogram` (kBenchHistogramBytes / 8 counts, copied out of
// guest RAM). The window is checked against the marks; the counts are only added up.
// The result's CPU time is stop.cpu - measure.cpu (both must be present).
Result<JobResult, std::string> bench_job_result(const guest::BenchReport& report,
                                                std::span<const std::uint64_t> histogram, const PhaseMark& measure,
                                                const PhaseMark& stop, std::uint64_t guest_ticks_ahead = 0);

}  // namespace rf::bench
