// What a 64-bit guest needs before its first instruction, built by the VMM: identity-mapped page
// tables (2 MiB pages over guest RAM), a flat GDT, and the vCPU's control and segment registers
// for long mode with paging on. No real mode, no firmware: the vCPU starts at the guest image's
// entry point already in 64-bit mode. Pure functions over guest RAM, so tests can check the
// tables without /dev/kvm.
#pragma once

#include <linux/kvm.h>

#include <cstddef>
#include <cstdint>
#include <span>

namespace rf::kvm {

// Control-register and EFER bits the guest runs with.
inline constexpr std::uint64_t kCr0ProtectedMode = 1ull << 0;
inline constexpr std::uint64_t kCr0MonitorCoprocessor = 1ull << 1;
inline constexpr std::uint64_t kCr0ExtensionType = 1ull << 4;
inline constexpr std::uint64_t kCr0NumericError = 1ull << 5;
inline constexpr std::uint64_t kCr0WriteProtect = 1ull << 16;
inline constexpr std::uint64_t kCr0Paging = 1ull << 31;
inline constexpr std::uint64_t kCr4Pae = 1ull << 5;
inline constexpr std::uint64_t kCr4OsFxsr = 1ull << 9;       // SSE instructions allowed
inline constexpr std::uint64_t kCr4OsXmmExcept = 1ull << 10;  // SIMD exceptions as #XM
inline constexpr std::uint64_t kEferSyscall = 1ull << 0;
inline constexpr std::uint64_t kEferLongModeEnable = 1ull << 8;
inline constexpr std::uint64_t kEferLongModeActive = 1ull << 10;
inline constexpr std::uint64_t kEferNoExecute = 1ull << 11;

// Page-table entry bits.
inline constexpr std::uint64_t kPtePresent = 1ull << 0;
inline constexpr std::uint64_t kPteWritable = 1ull << 1;
inline constexpr std::uint64_t kPteLargePage = 1ull << 7;

inline constexpr std::uint16_t kCodeSelector = 0x08;
inline constexpr std::uint16_t kDataSelector = 0x10;

// Writes the GDT and the page tables (guest_boot.h's layout) into `low_memory`, the host mapping
// of guest RAM from GPA 0 (at least kDeviceWindowGpa bytes). Maps [0, ram_bytes) rounded up to
// 2 MiB; nothing above it, so a guest access past its RAM faults instead of reaching anything.
// False (and nothing written) if ram_bytes is 0 or over kMaxRamBytes, or low_memory is too small.
bool write_long_mode_tables(std::span<std::byte> low_memory, std::uint64_t ram_bytes);

// Sets `sregs` (as KVM_GET_SREGS returned them) for 64-bit mode with the tables above.
void set_long_mode_registers(kvm_sregs& sregs);

}  // namespace rf::kvm
