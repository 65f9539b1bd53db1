// ProcessSandbox: a device (passthrough or mediated) and the guest RAM it lives in, set up for a
// process guest, plus the verified-workload run that `ringfence demo` and the tests use.
//
// Guest-physical layout (memfd-backed; by default one region at GPA 0):
//   0x1000              the guest's report page (ProcessReport), in the first region
//   0x2000              the VMM's control page (the bench scenario's BenchControl), ditto
//   device_window       the ring descriptor, then the rings (PassthroughConfig, 0x10000)
//   scratch             the last region: from its start, or from the next 2 MiB boundary after
//                       the device window when the window is in it
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "guest/process_report.h"
#include "memory/guest_memory_builder.h"
#include "mediated/mediated_device.h"
#include "passthrough/passthrough_device.h"
#include "sandbox/guest_process.h"

namespace rf {

enum class SandboxErrc { Memory, Device, Guest, Verify };
using SandboxError = Error<SandboxErrc>;

struct SandboxConfig {
  std::uint64_t ram_bytes = 256ull << 20;  // one region at GPA 0, unless `regions` is set
  std::vector<RegionLayout> regions;
  abi::Mode mode = abi::Mode::Passthrough;
  PassthroughConfig passthrough;  // used in passthrough mode
  MediatedConfig mediated;        // used in mediated mode
  std::string guest_binary = default_guest_binary();
};

inline constexpr GuestAddress kReportPage{0x1000};
inline constexpr GuestAddress kControlPage{0x2000};

class ProcessSandbox {
 public:
  static Result<ProcessSandbox, SandboxError> create(std::vector<Disk> disks, const SandboxConfig& config);

  const GuestMemory& memory() const { return *memory_; }
  GuestDevice& device() { return *device_; }
  // The device as what it is: null for the other mode.
  PassthroughDevice* passthrough() { return passthrough_; }
  MediatedDevice* mediated() { return mediated_; }
  GuestAddress scratch() const { return scratch_; }
  std::uint64_t scratch_bytes() const { return scratch_bytes_; }

  // Starts ringfence-guest on this sandbox with extra arguments (--scenario ...). It inherits
  // the calling thread's CPU affinity.
  Result<GuestProcess, GuestProcessError> spawn(std::vector<std::string> scenario_args) const;
  // Tears the device down (its thread, ring) and releases guest RAM, in that order. Nothing
  // but the destructor may be called afterwards.
  void close();
  // Tells a guest running the bench scenario which phase the run is in (kControlPage).
  void set_bench_phase(guest::BenchPhase phase);
  // The guest's report, after it ended.
  std::optional<guest::ProcessReport> report() const { return read_process_report(*memory_, kReportPage); }

 private:
  ProcessSandbox() = default;
  // Declared in reverse teardown order: the device (and its ring) goes before guest RAM.
  GuestMemoryMap memory_;
  std::unique_ptr<GuestDevice> device_;
  PassthroughDevice* passthrough_ = nullptr;
  MediatedDevice* mediated_ = nullptr;
  std::string guest_binary_;
  GuestAddress scratch_;
  std::uint64_t scratch_bytes_ = 0;
};

struct VerifiedRunConfig {
  std::uint64_t seed = 1;
  std::uint32_t passes = 4;
  std::uint32_t depth = 32;
  bool poll = false;
  std::chrono::milliseconds timeout{120'000};
};

struct VerifiedRunReport {
  GuestExitStatus exit;
  std::optional<guest::ProcessReport> guest;  // untrusted: what the guest says it did
  std::chrono::nanoseconds elapsed{0};        // from spawn to exit (includes the guest's start-up)
  std::uint64_t ios = 0;                      // reads + writes + flushes the guest reports
  bool guest_ok = false;                      // exited 0 with a workload status of ok
  std::uint64_t blocks_checked = 0;           // verified by the VMM from the disk itself
  std::uint64_t blocks_mismatched = 0;
  bool passed() const { return guest_ok && blocks_checked != 0 && blocks_mismatched == 0; }
};

struct PatternCheck {
  std::uint64_t checked = 0;     // blocks
  std::uint64_t mismatched = 0;  // blocks
};

// Reads every block of `disk` (through its own descriptor) and compares it with the data the
// workload writes in pass `pass` with `seed`.
Result<PatternCheck, SandboxError> verify_disk_pattern(const Disk& disk, std::uint64_t seed, std::uint32_t pass,
                                                       std::uint32_t block_bytes);
// The same through any descriptor open for reading on `bytes` of disk; `name` is for messages.
Result<PatternCheck, SandboxError> verify_disk_pattern(int fd, std::uint64_t bytes, std::string_view name,
                                                       std::uint64_t seed, std::uint32_t pass, std::uint32_t block_bytes);

// Runs the verified workload in a guest process on disk 0 and then checks, from the disk and
// without trusting the guest, that every block holds the last pass's data.
Result<VerifiedRunReport, SandboxError> run_verified_guest(ProcessSandbox& sandbox, const VerifiedRunConfig& config);

}  // namespace rf
