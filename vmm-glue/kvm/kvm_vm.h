// KvmVm: the part of the example VMM that speaks to /dev/kvm. One VM, guest RAM in memory slots,
// one vCPU started in 64-bit mode, port writes turned into eventfd signals (KVM_IOEVENTFD), and a
// run loop that decodes every exit. Nothing here knows about ringfence; kvm_machine.h wires it to
// a device through the public C API.
//
// Threads: run() is called by one thread (the vCPU thread); interrupt() from any other, to make a
// run() in progress return Interrupted. The first interrupt() installs a no-op handler for
// kInterruptSignal (SIGRTMIN + 7), whose only effect is to break KVM_RUN out with EINTR.
#pragma once

#include <linux/kvm.h>
#include <pthread.h>

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>

#include "util/result.h"
#include "util/unique_fd.h"

namespace rf::kvm {

enum class KvmErrc { Unavailable, Setup };
using KvmError = Error<KvmErrc>;

// Why one KVM_RUN came back, decoded from struct kvm_run.
struct VcpuExit {
  enum class Kind {
    PortWrite,    // `port`, `size`, `count`, `data` (in the kvm_run page, valid until the next run)
    PortRead,     // a guest `in`: the VMM answers nothing (all ones)
    Mmio,         // a guest access outside its RAM at `address`
    Halt,
    Shutdown,     // a triple fault: an exception with no IDT to take it
    Interrupted,  // interrupt() was called (or a signal arrived)
    Failed,       // entry failure, internal error or a KVM_RUN error: `detail` says which
  };
  Kind kind = Kind::Failed;
  std::uint16_t port = 0;
  std::uint8_t size = 0;
  std::uint32_t count = 0;
  const std::uint8_t* data = nullptr;
  std::uint64_t address = 0;
  std::string detail;
};

// Which module provides /dev/kvm ("kvm_intel", "kvm_amd", "kvm_pvm" with a note, or "unknown").
// On a PVM host (kvm_pvm) a guest that is not PVM-aware, as this VMM's is not, runs in KVM's
// instruction emulator: correct, but about a thousand times slower than hardware.
std::string kvm_module_description();

class KvmVm {
 public:
  // Opens /dev/kvm, checks the API version and the capabilities used here, creates the VM and its
  // vCPU. Unavailable (with the reason) when /dev/kvm is missing or unusable.
  static Result<KvmVm, KvmError> create();

  KvmVm(KvmVm&&) noexcept;
  KvmVm& operator=(KvmVm&&) = delete;
  KvmVm(const KvmVm&) = delete;
  KvmVm& operator=(const KvmVm&) = delete;
  ~KvmVm();

  // Maps host memory [host, host + bytes) at guest-physical `gpa` (page-aligned).
  Result<void, KvmError> add_memory(std::uint64_t gpa, std::uint64_t bytes, void* host, bool read_only);
  // A 32-bit write to `port` signals `eventfd` inside the kernel, with no exit to the VMM.
  Result<void, KvmError> add_port_eventfd(std::uint16_t port, int eventfd);
  // Resets the vCPU to 64-bit mode (long_mode.h) at `entry` with `stack_top` and `argument` in
  // RDI. The page tables must already be in guest RAM.
  Result<void, KvmError> reset_vcpu(std::uint64_t entry, std::uint64_t stack_top, std::uint64_t argument);
  // How far the guest's time-stamp counter reads ahead of the host's (modulo 2^64), for turning a
  // guest's ticks into host ticks; KVM runs it at the host's rate unless told otherwise (this VMM
  // never is). On this project's Linux 6.18 hosts a new VM's TSC reads the host's, so this is a
  // few thousand ticks either way: the reading's own error. Not while run() is in progress:
  // KVM_GET_MSRS would wait for KVM_RUN to return.
  Result<std::uint64_t, KvmError> guest_tsc_ahead();
  // The vCPU's RIP, for messages; not while run() is in progress.
  std::optional<std::uint64_t> instruction_pointer();

  // Runs the vCPU until its next exit to user space.
  VcpuExit run();
  // Makes the current or next run() return Interrupted. `vcpu_thread` is the thread in run().
  void interrupt(pthread_t vcpu_thread);
  // Clears a pending interrupt before the next boot.
  void clear_interrupt();

 private:
  KvmVm() = default;
  UniqueFd kvm_, vm_, vcpu_;
  kvm_run* run_ = nullptr;  // the vCPU's shared page(s), mmap_size_ bytes
  std::size_t mmap_size_ = 0;
  std::uint32_t next_slot_ = 0;
};

}  // namespace rf::kvm
