// The contract between the KVM example VMM and its bare-metal guest (vmm-glue/kvm/guest): the
// guest-physical layout the VMM builds, the boot parameters it leaves in guest RAM, and the
// I/O ports. Freestanding (no includes but <cstdint>): the guest compiles it too.
//
// Guest-physical layout (one RAM region at GPA 0, identity-mapped with 2 MiB pages):
//   0x1000    the guest's report (guest::ProcessReport, the same page a process guest writes)
//   0x2000    the VMM's bench control word (guest::BenchControl)
//   0x3000    BootInfo
//   0x4000    the GDT
//   0x5000    PML4, 0x6000 PDPT, 0x7000.. one page directory per GiB (up to kMaxRamBytes)
//   0x10000   .. 0x80000: the guest's stack (grows down from kStackTop)
//   0x100000  the guest image (code, data, bss), at most kImageMaxBytes
//   0x200000  the device window (descriptor, then rings: rf_device_window_size)
//   scratch   from the first 2 MiB boundary after the device window to the end of RAM
#pragma once

#include <cstdint>

namespace rf::kvm {

inline constexpr std::uint64_t kReportGpa = 0x1000;
inline constexpr std::uint64_t kControlGpa = 0x2000;
inline constexpr std::uint64_t kBootInfoGpa = 0x3000;
inline constexpr std::uint64_t kGdtGpa = 0x4000;
inline constexpr std::uint64_t kPml4Gpa = 0x5000;
inline constexpr std::uint64_t kPdptGpa = 0x6000;
inline constexpr std::uint64_t kPageDirectoryGpa = 0x7000;
inline constexpr std::uint64_t kMaxPageDirectories = 4;  // 4 GiB of 2 MiB pages
inline constexpr std::uint64_t kStackTop = 0x80000;
inline constexpr std::uint64_t kImageGpa = 0x100000;
inline constexpr std::uint64_t kImageMaxBytes = 0x100000;
inline constexpr std::uint64_t kDeviceWindowGpa = 0x200000;
inline constexpr std::uint64_t kLargePage = 2ull << 20;
inline constexpr std::uint64_t kMaxRamBytes = kMaxPageDirectories << 30;

// Port writes. The doorbell never leaves the kernel: KVM_IOEVENTFD turns it into a write to the
// device's kick eventfd. The others exit to the VMM.
inline constexpr std::uint16_t kDoorbellPort = 0x0f00;  // 32-bit write, any value
inline constexpr std::uint16_t kExitPort = 0x0f04;      // 32-bit write: the guest's GuestExit code
inline constexpr std::uint16_t kDebugPort = 0x00e9;     // 8-bit writes: log text, '\n' ends a line

inline constexpr std::uint64_t kBootMagic = 0x544f'4f42'4d56'4b46ULL;  // "FKVMBOOT"
inline constexpr std::uint32_t kBootVersion = 1;

enum class Scenario : std::uint32_t {
  Verify = 1,  // the verified workload (guest::run_verified_workload)
  Bench = 2,   // the bench loop (guest::run_bench_workload), steered through kControlGpa
  Probe = 3,   // one raw SQE with the fields below, as a hostile guest would write it
  // Misbehaviour the VMM must survive (tests and `ringfence vmm`'s checks):
  ReadOutsideRam = 4,  // a load from GPA memory_bytes + probe_offset: unmapped, so a page fault
  Spin = 5,            // never exits: only the VMM's timeout ends it
};

// Written by the VMM before each boot; the guest copies it once and checks it.
struct BootInfo {
  std::uint64_t magic = kBootMagic;
  std::uint32_t version = kBootVersion;
  std::uint32_t scenario = 0;       // a Scenario
  std::uint64_t memory_bytes = 0;   // RAM is [0, memory_bytes), identity-mapped
  std::uint64_t descriptor_gpa = 0;
  std::uint64_t report_gpa = kReportGpa;
  std::uint64_t control_gpa = kControlGpa;
  std::uint64_t scratch_gpa = 0;
  std::uint64_t scratch_bytes = 0;
  std::uint64_t seed = 1;
  std::uint32_t passes = 4;         // verify
  std::uint32_t depth = 32;         // verify, bench
  std::uint32_t block_bytes = 4096; // bench
  std::uint32_t pattern = 0;        // bench: a guest::BenchPattern
  std::uint32_t probe_opcode = 0;   // probe: the SQE as written, fixed file 0
  std::uint32_t probe_len = 4096;
  std::uint64_t probe_addr = 0;     // probe: the raw address; 0 = the scratch memory's device address
  std::uint64_t probe_offset = 0;
};
static_assert(sizeof(BootInfo) <= 4096, "BootInfo fits its page");

}  // namespace rf::kvm
