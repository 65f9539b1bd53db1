// The verified workload, freestanding like the driver: seeded random writes over the whole
// disk, a flush, then every block read back in another random order and compared, repeated
// for several passes with different data. Depth-limited, never more in flight than the
// driver's depth.
#pragma once

#include <cstdint>

#include "guest/driver.h"

namespace rf::guest {

inline constexpr std::uint32_t kWorkloadMaxDepth = 256;

struct WorkloadConfig {
  std::uint64_t seed = 1;
  std::uint32_t disk = 0;
  std::uint32_t passes = 4;
  std::uint32_t block_bytes = 4096;
  std::uint32_t depth = 32;  // clamped to the driver's depth and kWorkloadMaxDepth
  bool poll = false;         // spin on the CQ with notifications off, instead of waiting
  // Guest RAM the workload may use for data buffers and its block order: inside one buffer
  // window and outside the device window. workload_scratch_bytes() says how much.
  std::uint64_t scratch_gpa = 0;
  std::uint64_t scratch_bytes = 0;
};

enum class WorkloadStatus : std::uint32_t {
  Ok = 0,
  BadConfig,     // no such disk, block size not a multiple of the disk's, disk too large
  NoScratch,     // the scratch range is too small or not in guest memory
  Refused,       // the driver refused a request (first_refusal says why)
  IoErrors,      // some completions carried errors (first_error_* say which)
  Mismatch,      // data read back differed from what was written
};

struct WorkloadReport {
  WorkloadStatus status = WorkloadStatus::Ok;
  std::uint32_t passes = 0;  // completed
  std::uint64_t reads = 0;
  std::uint64_t writes = 0;
  std::uint64_t flushes = 0;
  std::uint64_t errors = 0;
  std::uint64_t mismatches = 0;  // blocks
  std::uint64_t first_error_tag = 0;
  std::int32_t first_error_result = 0;
  RequestStatus first_refusal = RequestStatus::Ok;
  std::uint64_t blocks = 0;  // per pass
};

std::uint64_t workload_scratch_bytes(const WorkloadConfig& config, std::uint64_t disk_bytes);

WorkloadStatus run_verified_workload(Driver& driver, const WorkloadConfig& config, WorkloadReport& report);

const char* workload_status_name(WorkloadStatus status);

}  // namespace rf::guest
