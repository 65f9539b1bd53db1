// The guest rows of `ringfence bench`: the same fio-like job as the host rows, run by the
// sandboxed guest process (ringfence-guest --scenario bench) through a device in its RAM,
// exactly as `ringfence demo` runs it:
//   passthrough  the guest's SQEs go straight to the restricted SQPOLL ring in its RAM;
//   mediated     the mediator thread validates and translates every SQE onto a private ring.
// The guest polls its CQ (as the SQPOLL host rows and fio with sqthread_poll do) and times each
// I/O with the cycle counter; the VMM flips the run's phase in guest RAM and converts ticks to
// time from its own clock. CPU time is the VMM's (SQPOLL thread or mediator included) plus the
// guest process's.
#pragma once

#include <string>
#include <string_view>

#include "engine/block_job.h"
#include "util/result.h"

namespace rf::bench {

enum class GuestRow { Passthrough, Mediated };
std::string_view guest_row_name(GuestRow row);

struct GuestJobSpec {
  JobSpec job;  // job.fd is not used: the device opens the target itself
  std::string target;  // path of the file or block device
  std::string guest_binary;  // ringfence-guest; empty: default_guest_binary()
};

// The disk is registered as it is (a regular file is not put behind a loop device, see
// docs/benchmarks.md), read-only for rw=randread. app_cpu pins the guest process, sqpoll_cpu the
// SQPOLL thread or the mediator.
Result<JobResult, std::string> run_guest_job(GuestRow row, const GuestJobSpec& spec);

}  // namespace rf::bench
