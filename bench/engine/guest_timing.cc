#include "engine/guest_timing.h"

#include <fmt/format.h>

#include "util/cycle_counter.h"
#include "util/log_linear_buckets.h"

namespace rf::bench {

PhaseMark mark_phase(std::optional<CpuTimes> cpu) {
  PhaseMark m;
  m.cpu = cpu;
  m.clock = std::chrono::steady_clock::now();
  m.cycles = read_cycle_counter();
  return m;
}

std::string bench_status_text(const guest::BenchReport& report) {
  std::string text = fmt::format("bench status: {}", guest::bench_status_name(report.status));
  if (report.status == guest::BenchStatus::Refused) {
    text += fmt::format(", {}", guest::request_status_name(report.first_refusal));
  }
  return text;
}

Result<JobResult, std::string> bench_job_result(const guest::BenchReport& report,
                                                std::span<const std::uint64_t> histogram, const PhaseMark& measure,
                                                const PhaseMark& stop, std::uint64_t guest_ticks_ahead) {
  if (!measure.cpu || !stop.cpu) return unexpected(std::string("cannot read the CPU time at a phase flip (from /proc)"));
  // The guest saw Measure after the VMM's first mark and Stop after its second, so (on the
  // host's counter, modulo 2^64 like the counter itself) its window starts after the first mark
  // and has a positive length.
  const unsigned long long start = report.ticks_start - guest_ticks_ahead;
  const unsigned long long end = report.ticks_end - guest_ticks_ahead;
  const double elapsed_ns = static_cast<double>(std::chrono::nanoseconds(stop.clock - measure.clock).count());
  if (stop.cycles <= measure.cycles || elapsed_ns <= 0 || start < measure.cycles || end <= start) {
    return unexpected(std::string("the guest's timing is inconsistent with the VMM's cycle counter"));
  }
  const double ticks_per_ns = static_cast<double>(stop.cycles - measure.cycles) / elapsed_ns;
  JobResult result;
  result.ios = report.ios;
  result.reads = report.reads;
  result.writes = report.writes;
  result.errors = report.errors;
  result.first_error = report.first_error;
  result.measured = std::chrono::nanoseconds(static_cast<long long>(static_cast<double>(end - start) / ticks_per_ns));
  const CpuTimes used = *stop.cpu - *measure.cpu;
  result.cpu_user = used.user;
  result.cpu_system = used.system;
  result.cpu = used.total();
  // Each bucket's count at the bucket's upper bound, in nanoseconds.
  for (unsigned b = 0; b < buckets::kCount && b < histogram.size(); ++b) {
    if (histogram[b] == 0) continue;
    const double ns = static_cast<double>(buckets::upper_bound_of(b)) / ticks_per_ns;
    result.latency.record(ns >= 1.8e19 ? UINT64_MAX : static_cast<std::uint64_t>(ns), histogram[b]);
  }
  return result;
}

}  // namespace rf::bench
