// KvmMachine: the KVM example VMM, written as an integrator would write one against the public C
// API (include/ringfence.h) and nothing else of ringfence. It owns:
//   - guest RAM (rf_memory, memfd-backed, one region at GPA 0) mapped into the VM as slot 0;
//   - one device (rf_device) of either mode over one disk, its window at kDeviceWindowGpa;
//   - the VM and its vCPU (KvmVm), with the guest's doorbell port wired to the device's kick
//     eventfd by KVM_IOEVENTFD, so a doorbell never exits to user space;
//   - the bare-metal guest image (vmm-glue/kvm/guest), loaded afresh at every boot.
// Completions are polled by the guest (notifications off, as the 2020 proof of concept did):
// the notify eventfd is not wired to an interrupt.
//
// Each boot runs one guest program (BootInfo::scenario) on a vCPU thread until it writes its exit
// code to kExitPort, faults, halts, or runs out of time; the machine and the device stay up
// between boots, as a VMM's device outlives a guest reboot. Teardown order: vCPU, device, VM,
// guest RAM.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "guest/process_report.h"
#include "kvm/guest_boot.h"
#include "kvm/kvm_vm.h"
#include "ringfence.h"

namespace rf::kvm {

enum class MachineErrc { Kvm, Image, Memory, Disk, Policy, Device, Boot };
using MachineError = Error<MachineErrc>;

struct MachineConfig {
  rf_mode mode = RF_MODE_PASSTHROUGH;
  std::string disk_path;
  std::uint32_t disk_flags = 0;        // RF_DISK_*
  std::string policy;                  // a built-in name or a file; empty: the mode's default
  std::uint64_t ram_bytes = 256ull << 20;  // a multiple of 2 MiB, at most kMaxRamBytes
  std::uint32_t queue_depth = 64;
  std::string guest_image;             // the flat guest binary (default_kvm_guest_image())
  std::optional<unsigned> device_cpu;  // pins the device thread, SQPOLL thread or mediator to this CPU
  bool kernel_sqpoll = false;          // passthrough: RF_DEVICE_KERNEL_SQPOLL (opt-in, unbounded)
};

// How one boot ended. Everything but `kind`, `exit_code` and `elapsed` came from the guest.
struct GuestOutcome {
  enum class Kind { Exited, Halted, Fault, TimedOut, Failed };
  Kind kind = Kind::Failed;
  int exit_code = -1;   // Exited: what the guest wrote to kExitPort (a guest::GuestExit)
  std::string detail;   // Fault, Failed: what happened
  std::vector<std::string> log;  // the guest's debug-port lines (bounded; see kMaxLogLines)
  std::uint64_t log_dropped = 0;  // bytes past the bounds
  std::uint64_t stray_port_io = 0;  // port accesses to no device (answered with all ones)
  std::chrono::nanoseconds elapsed{0};  // from the first KVM_RUN to the exit
  std::optional<guest::ProcessReport> report;  // GUEST-CONTROLLED: for display only
  bool ok() const { return kind == Kind::Exited && exit_code == 0; }
  // A Probe boot's completion result, when the guest exited cleanly after reaping it.
  std::optional<std::int32_t> probe_result() const {
    if (!ok() || !report || report->probe_done != 1) return std::nullopt;
    return report->probe_result;
  }
  std::string describe() const;
};

inline constexpr std::size_t kMaxLogLines = 256;
inline constexpr std::size_t kMaxLogLineBytes = 160;

class KvmMachine {
 public:
  static Result<KvmMachine, MachineError> create(const MachineConfig& config);

  KvmMachine(KvmMachine&&) noexcept;
  KvmMachine& operator=(KvmMachine&&) = delete;
  KvmMachine(const KvmMachine&) = delete;
  KvmMachine& operator=(const KvmMachine&) = delete;
  ~KvmMachine();

  // BootInfo for `scenario` with this machine's memory, descriptor and scratch filled in.
  BootInfo boot_info(Scenario scenario) const;
  // BootInfo for a Probe: one raw SQE with this opcode, fixed file 0, `addr` (0: the scratch
  // memory's device address) and disk offset, as a hostile guest would write it.
  BootInfo probe_info(std::uint32_t opcode, std::uint64_t addr, std::uint64_t offset) const;
  // Loads the guest afresh and starts its vCPU thread; then finish_boot() waits for it. Between
  // the two, set_bench_phase() steers a bench guest.
  Result<void, MachineError> start_boot(const BootInfo& info);
  GuestOutcome finish_boot(std::chrono::milliseconds timeout);
  GuestOutcome boot(const BootInfo& info, std::chrono::milliseconds timeout);

  // Whether a started guest is still running (false once it has exited, faulted or halted).
  bool guest_running();
  void set_bench_phase(guest::BenchPhase phase);
  // How far the guest's TSC reads ahead of the host's (KvmVm::guest_tsc_ahead); only between
  // boots, with no vCPU running.
  Result<std::uint64_t, MachineError> guest_tsc_ahead();
  // Copies guest RAM [gpa, gpa + out.size()) out; false if that is not all RAM.
  bool read_guest(std::uint64_t gpa, std::span<std::byte> out) const;

  rf_device* device() { return device_; }
  std::uint64_t ram_bytes() const { return ram_bytes_; }
  std::uint64_t scratch_gpa() const { return scratch_gpa_; }
  std::uint64_t scratch_bytes() const { return ram_bytes_ - scratch_gpa_; }
  std::uint64_t disk_bytes() const { return disk_bytes_; }
  std::uint32_t disk_block_bytes() const { return disk_block_bytes_; }
  const std::string& disk_description() const { return disk_description_; }
  // The host address guest RAM starts at (what a passthrough guest's SQEs are biased by).
  void* ram_host() const { return ram_host_; }

  // Stops the device (waiting up to `drain` for requests in flight) and reports; the machine can
  // boot no guest afterwards. The destructor stops a device that is not stopped.
  Result<rf_stop_report, MachineError> stop(std::chrono::milliseconds drain);

 private:
  KvmMachine() = default;
  void release();

  rf_memory* memory_ = nullptr;
  rf_device* device_ = nullptr;
  std::unique_ptr<KvmVm> vm_;
  std::vector<unsigned char> image_;
  std::byte* ram_ = nullptr;  // host view of guest RAM (owned by memory_)
  void* ram_host_ = nullptr;
  std::uint64_t ram_bytes_ = 0;
  std::uint64_t scratch_gpa_ = 0;
  std::uint64_t disk_bytes_ = 0;
  std::uint32_t disk_block_bytes_ = 0;
  std::string disk_description_;
  std::thread vcpu_thread_;
  std::unique_ptr<struct VcpuRun> run_;  // the boot in progress, shared with the vCPU thread
};

// The guest image beside the running executable (the build tree), else in ../share/ringfence
// (an installed tree); RINGFENCE_KVM_GUEST overrides both.
std::string default_kvm_guest_image();

}  // namespace rf::kvm
