// The guest rows of `ringfence bench`: the same fio-like job as the host rows, run by the
// sandboxed guest process (ringfence-guest --scenario bench) through a device in its RAM,
// exactly as `ringfence demo` runs it:
//   passthrough         the guest's SQEs stay in the restricted ring in its RAM; the device
//                       thread hands them to the kernel (bounded);
//   passthrough-sqpoll  the same ring consumed by a kernel SQPOLL thread (opt-in, unbounded);
//   mediated            the mediator thread validates and translates every SQE onto a private ring.
// The guest times each I/O with the cycle counter; the VMM flips the run's phase in guest RAM
// and converts ticks to time from its own clock. CPU time is the VMM's (SQPOLL thread or
// device thread or mediator included) plus the guest processes'.
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/block_job.h"
#include "engine/cpu_times.h"
#include "disk/disk.h"
#include "engine/guest_timing.h"
#include "util/result.h"

namespace rf {
class ProcessSandbox;
class GuestProcess;
}  // namespace rf

namespace rf::bench {

enum class GuestRow { Passthrough, PassthroughSqpoll, Mediated };
std::string_view guest_row_name(GuestRow row);

struct GuestJobSpec {
  JobSpec job;  // job.fd is not used: the device opens the target itself
  std::string target;  // path of the file or block device
  std::string guest_binary;  // ringfence-guest; empty: default_guest_binary()
  bool poll = true;  // the guest polls its CQ (as fio with sqthread_poll); false: it waits for notifications
  // The disk to use (a handle is duplicated) instead of opening `target`: for guests that write
  // one target together, since a disk open for writing locks its file against a second open.
  const Disk* shared_disk = nullptr;
};

// One guest process running the bench scenario on its own sandboxed device: started in the ramp
// phase, then measure(), stop() and result(). The disk is registered as it is (a regular file
// is not put behind a loop device, see docs/benchmarks.md), read-only for rw=randread. app_cpu
// pins the guest process, sqpoll_cpu the device thread, SQPOLL thread or mediator.
class GuestBench {
 public:
  // `share_sqpoll` (passthrough-sqpoll only): attach to that guest's SQPOLL thread instead of
  // starting one.
  static Result<std::unique_ptr<GuestBench>, std::string> start(GuestRow row, const GuestJobSpec& spec,
                                                                const GuestBench* share_sqpoll = nullptr);
  ~GuestBench();
  GuestBench(const GuestBench&) = delete;
  GuestBench& operator=(const GuestBench&) = delete;

  // An error if the guest has ended (it should run until stop()).
  Result<void, std::string> check_running();
  void measure();  // notes the VMM's clock and counter and tells the guest to count
  void stop();     // notes them again and tells the guest to drain and exit
  // Waits for the guest to exit and turns its report into a result. Its CPU time is the guest
  // process's only: the caller adds the VMM's.
  Result<JobResult, std::string> result();

 private:
  GuestBench() = default;

  std::unique_ptr<ProcessSandbox> sandbox_;
  std::unique_ptr<GuestProcess> guest_;  // after the sandbox: killed before its device goes
  PhaseMark measure_mark_, stop_mark_;  // CPU times: the guest process's
};

// One guest: ramp, measure for the runtime, stop; the VMM's CPU time included.
Result<JobResult, std::string> run_guest_job(GuestRow row, const GuestJobSpec& spec);

// `guests` passthrough-sqpoll guests at once, each on its own ring and device, measured over the
// same window; with `share_sqpoll` every ring after the first attaches to the first one's SQPOLL
// thread. One result per guest, in order; `vmm_cpu` is the VMM process's CPU time in the
// window (every SQPOLL thread included), to add once to the guests' own.
struct FleetResult {
  std::vector<JobResult> guests;
  CpuTimes vmm_cpu;
  double total_iops() const;
  double cpu_us_per_io() const;
};
Result<FleetResult, std::string> run_guest_fleet(const GuestJobSpec& spec, unsigned guests, bool share_sqpoll);

}  // namespace rf::bench
