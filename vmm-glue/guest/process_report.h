// What a process guest (ringfence-guest) leaves in its RAM for the VMM when it ends, and the
// fixed descriptors and exit codes of its command line contract. The VMM copies the report
// out once, after the guest exited, and treats it as untrusted: it is for display, and the
// VMM verifies the disk itself.
#pragma once

#include <cstdint>

#include "guest/bench_workload.h"
#include "guest/driver.h"
#include "guest/fuzz_program.h"
#include "guest/workload.h"

namespace rf::guest {

// The descriptors a process guest starts with (everything else is closed before it runs).
inline constexpr int kMemoryFd = 3;  // guest RAM memfd; closed once mapped
inline constexpr int kKickFd = 4;
inline constexpr int kNotifyFd = 5;

inline constexpr std::uint64_t kReportMagic = 0x5452'4f50'4552'4652ULL;  // "RFREPORT"

enum class GuestExit : int {
  Ok = 0,
  Usage = 2,     // bad command line
  Setup = 3,     // mapping guest memory failed
  Seccomp = 4,   // the filter could not be installed
  Attach = 5,    // the descriptor was refused (report.attach_status says why)
  Workload = 6,  // the workload failed (report.workload, .bench or .fuzz status says why)
};

inline const char* guest_exit_name(int code) {
  switch (static_cast<GuestExit>(code)) {
    case GuestExit::Ok: return "ok";
    case GuestExit::Usage: return "bad command line";
    case GuestExit::Setup: return "mapping guest memory failed";
    case GuestExit::Seccomp: return "installing the seccomp filter failed";
    case GuestExit::Attach: return "the descriptor was refused";
    case GuestExit::Workload: return "the workload failed";
  }
  return "unknown";
}

struct ProcessReport {
  std::uint64_t magic = 0;
  AttachStatus attach_status = AttachStatus::Ok;
  abi::DecodeStatus decode_status = abi::DecodeStatus::Ok;
  WorkloadReport workload{};  // the verify scenario's
  BenchReport bench{};        // the bench scenario's
  FuzzGuestReport fuzz{};     // the fuzz scenario's
  DriverCounters counters{};
  std::int32_t probe_result = 0;  // the probe scenario's completion result
  std::uint32_t probe_done = 0;
};
static_assert(sizeof(ProcessReport) <= 4096, "the report fits the report page");

}  // namespace rf::guest
