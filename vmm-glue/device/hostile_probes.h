// The hostile probes: single SQEs a hostile guest aims at what it must never reach, and the
// completion each must get in each mode. One catalogue, used by `ringfence demo` (a sandboxed
// process guest), `ringfence vmm` (a KVM guest) and tests/vmm/hostile_probes_test.cc (the guest
// driver in-process), so the three agree on what is tried and what is expected.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "abi/ring_descriptor.h"
#include "abi/ring_entries.h"

namespace rf {

// Where a probe's `addr` points.
enum class ProbeAddress {
  CanaryPage,    // a page of VMM memory outside guest RAM (util/canary_page.h)
  PastGuestRam,  // the first byte after guest RAM, in the mode's address space
  GuestBuffer,   // a valid data buffer in guest RAM (the guest's scratch memory)
};

// Where a probe's `off` points.
enum class ProbeOffset {
  DiskStart,           // 0
  GibPastTheDiskEnd,   // the disk's size plus 1 GiB
};

// What the VMM checks afterwards: it must not have changed.
enum class ProbeWitness {
  CanaryPage,  // reads back its fill byte
  ImageSize,   // the disk image has the size it had
  None,
};

struct HostileProbe {
  std::string_view name;         // short, for test names and logs: "read-into-canary"
  std::uint8_t opcode = 0;       // IORING_OP_*
  ProbeAddress address = ProbeAddress::CanaryPage;
  ProbeOffset offset = ProbeOffset::DiskStart;
  ProbeWitness witness = ProbeWitness::None;
  std::int32_t passthrough = 0;  // the completion the kernel gives
  std::int32_t mediated = 0;     // the completion the mediator gives
  std::string_view what;         // "READ_FIXED into a VMM canary page outside guest RAM"
  std::string_view why;          // what refuses it in each mode

  std::int32_t expected(abi::Mode mode) const { return mode == abi::Mode::Passthrough ? passthrough : mediated; }
};

std::span<const HostileProbe> hostile_probes();

// What the environment gives the probes' addresses and offsets.
struct ProbeTargets {
  std::uint64_t canary = 0;        // the canary page's host address
  std::uint64_t past_ram = 0;      // passthrough: the host address past guest RAM; mediated: the GPA
  std::uint64_t guest_buffer = 0;  // 4 KiB of guest RAM in buffer window 0, in the mode's address space
  std::uint64_t disk_bytes = 0;
};

// The probe as the one raw SQE a guest submits (FIXED_FILE, disk 0, 4096 bytes, buffer 0).
abi::GuestSqe probe_sqe(const HostileProbe& probe, const ProbeTargets& targets);

}  // namespace rf
