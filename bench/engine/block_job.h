// One fio-like job on one row's ring: `depth` random block I/Os kept in flight on a target
// (rw=randread, randwrite or randrw 50/50; uniform random block-aligned offsets; O_DIRECT),
// for a ramp time and then a measured runtime. Latency is completion latency (submission to
// reaping, as fio's clat), per I/O, into a histogram; CPU time is the whole process's (the
// application thread and, for SQPOLL rows, the kernel SQ thread, which belongs to the process).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "engine/latency_histogram.h"
#include "util/result.h"

namespace rf::bench {

enum class Pattern { RandRead, RandWrite, RandRW };
std::string_view pattern_name(Pattern pattern);  // fio's rw= names
std::optional<Pattern> pattern_from_name(std::string_view name);

// The host-side rows (the guest rows run in a guest process: ringfence demo's machinery).
// SQPOLL rows reap by polling the CQ in user space (as fio does with sqthread_poll); `bare`
// waits for completions in io_uring_enter.
enum class HostRow {
  Bare,              // io_uring (liburing), registered file and buffer, interrupt-driven completions
  BareSqpoll,        // the same with SQPOLL, the CQ polled
  BareSqpollIopoll,  // the same with IOPOLL, where the target polls
  Restricted,        // BareSqpoll built by ringfence: R_DISABLED + blk-passthrough + self-check
};
std::string_view host_row_name(HostRow row);

struct JobSpec {
  int fd = -1;  // the target, opened O_DIRECT (borrowed)
  std::uint64_t size_bytes = 0;
  std::uint32_t block_bytes = 4096;
  std::uint32_t depth = 1;
  Pattern pattern = Pattern::RandRead;
  std::chrono::milliseconds ramp{1000};
  std::chrono::milliseconds runtime{5000};
  std::uint64_t seed = 1;
  std::optional<unsigned> app_cpu;     // pin the submitting thread
  std::optional<unsigned> sqpoll_cpu;  // pin the SQPOLL thread
};

struct JobResult {
  std::uint64_t ios = 0;  // completed during the measured runtime
  std::uint64_t reads = 0, writes = 0;  // of those
  std::uint64_t errors = 0;
  int first_error = 0;  // -errno of the first failed completion
  std::chrono::nanoseconds measured{0};
  std::chrono::nanoseconds cpu{0};  // process CPU time during the measured runtime
  std::chrono::nanoseconds cpu_user{0}, cpu_system{0};  // its two halves
  LatencyHistogram latency;
  double iops() const;
  double cpu_us_per_io() const;
};

// Runs `spec` on a fresh ring of kind `row`. An error says why the row could not run (for
// IOPOLL on a target that does not poll: that, in words).
Result<JobResult, std::string> run_host_job(HostRow row, const JobSpec& spec);

}  // namespace rf::bench
