// The KVM rows of `ringfence bench` (kvm-passthrough, kvm-mediated): the same fio-like job as the
// other rows, run by the bare-metal guest of the KVM example VMM (vmm-glue/kvm) in a real
// virtual machine, through a device of either mode on the target:
//   kvm-passthrough  the guest's SQEs go straight to the restricted SQPOLL ring in its RAM;
//   kvm-mediated     the mediator validates and translates every SQE onto a private ring.
// The guest knows only guest-physical memory; its doorbell is a port write that KVM turns into
// the device's kick eventfd; it polls for completions. It times each I/O with its TSC, and the
// VMM converts guest ticks with the TSC offset it reads between boots (guest_timing.h).
//
// CPU time is the whole VMM process's over the measured window: the vCPU thread (which is where
// KVM runs the guest, or emulates it), the SQPOLL thread or mediator, and nothing else busy.
#pragma once

#include <string>
#include <string_view>

#include "engine/block_job.h"
#include "engine/guest_job.h"
#include "util/result.h"

namespace rf::bench {

std::string_view kvm_row_name(GuestRow row);  // "kvm-passthrough", "kvm-mediated"

struct KvmJobSpec {
  JobSpec job;  // job.fd is not used: the device opens the target itself
  std::string target;  // path of the file or block device
  std::string guest_image;  // the flat KVM guest image; empty: kvm::default_kvm_guest_image()
};

// Boots one VM with a device of `row`'s mode on the target (registered as it is, like the other
// guest rows; read-only for rw=randread), then ramp, measure for the runtime, stop. app_cpu pins
// the vCPU thread, sqpoll_cpu the SQPOLL thread or the mediator. An error says why the row could
// not run, /dev/kvm missing or unusable included.
Result<JobResult, std::string> run_kvm_guest_job(GuestRow row, const KvmJobSpec& spec);

}  // namespace rf::bench
