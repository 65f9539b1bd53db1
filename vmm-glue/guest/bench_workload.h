// The guest side of `ringfence bench`'s passthrough and mediated rows, freestanding like the
// driver: fio's job (random block-aligned offsets, rw=randread, randwrite or randrw 50/50) kept
// at `depth` I/Os in flight on one disk, timed with the CPU's cycle counter because a sandboxed
// guest may not call clock_gettime.
//
// The VMM steers the run through a BenchControl word in guest RAM: Ramp (I/O runs, nothing is
// counted), Measure (the guest notes the counter and counts every completion from then on,
// with its latency in ticks in a log-linear histogram), Stop (the guest notes the counter,
// stops issuing, drains and returns). The VMM turns ticks into time by reading the same
// counter itself when it flips the phases.
#pragma once

#include <cstdint>

#include "guest/driver.h"
#include "util/log_linear_buckets.h"

namespace rf::guest {

enum class BenchPattern : std::uint32_t { RandRead = 0, RandWrite = 1, RandRW = 2 };
enum class BenchPhase : std::uint32_t { Ramp = 0, Measure = 1, Stop = 2 };

// Written by the VMM, read by the guest (an aligned 32-bit word, loaded atomically).
struct BenchControl {
  std::uint32_t phase = 0;  // a BenchPhase
  std::uint32_t reserved = 0;
};

// The histogram of completion latencies in ticks, at the start of the scratch memory: one
// 64-bit count per rf::buckets bucket. The data blocks follow it, page-aligned.
inline constexpr std::uint64_t kBenchHistogramBytes = std::uint64_t{buckets::kCount} * 8;
inline constexpr std::uint64_t kBenchDataOffset = (kBenchHistogramBytes + 4095) & ~std::uint64_t{4095};

struct BenchConfig {
  std::uint64_t seed = 1;
  std::uint32_t disk = 0;
  std::uint32_t block_bytes = 4096;
  std::uint32_t depth = 1;  // clamped to the driver's depth and kWorkloadMaxDepth
  BenchPattern pattern = BenchPattern::RandRead;
  bool poll = true;  // spin on the CQ with notifications off (as fio with sqthread_poll)
  std::uint64_t control_gpa = 0;  // a BenchControl, 4-byte aligned
  std::uint64_t scratch_gpa = 0;  // page-aligned, inside one buffer window
  std::uint64_t scratch_bytes = 0;  // at least bench_scratch_bytes()
};

enum class BenchStatus : std::uint32_t {
  Ok = 0,
  BadConfig,  // no such disk, a block size the disk cannot take, no cycle counter
  NoScratch,  // the scratch or control memory is too small or outside guest memory
  Refused,    // the driver refused a request (first_refusal says why)
};

struct BenchReport {
  BenchStatus status = BenchStatus::Ok;
  RequestStatus first_refusal = RequestStatus::Ok;
  std::uint32_t depth = 0;  // after clamping
  std::uint64_t ios = 0;  // completed while measuring
  std::uint64_t reads = 0, writes = 0;  // of those
  std::uint64_t errors = 0;  // completions (any phase) that did not move a whole block
  std::int32_t first_error = 0;
  std::uint64_t ticks_start = 0;  // the counter when the guest saw Measure
  std::uint64_t ticks_end = 0;    // ... and Stop
};

std::uint64_t bench_scratch_bytes(const BenchConfig& config);

// Runs until the control word says Stop; returns the status it also writes into `report`.
BenchStatus run_bench_workload(Driver& driver, const BenchConfig& config, BenchReport& report);

const char* bench_status_name(BenchStatus status);

}  // namespace rf::guest
