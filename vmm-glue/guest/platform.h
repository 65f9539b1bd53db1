// What the environment gives the reference guest driver: its view of guest-physical memory
// and two callbacks. Nothing else crosses this boundary, which is what lets the same driver
// run in a sandboxed process (memory = a mapping of the guest-RAM memfd, kick = an eventfd
// write, wait = an eventfd read) and in a bare-metal KVM guest (memory identity-mapped, kick =
// a doorbell write, wait = halt until the completion interrupt).
#pragma once

#include <cstdint>

namespace rf::guest {

struct Platform {
  void* context = nullptr;
  // Rings the doorbell: the device may be asleep and has new SQEs.
  void (*kick)(void* context) = nullptr;
  // Blocks until the device signals completions (it may return early; the driver re-checks).
  void (*wait)(void* context) = nullptr;
  // Guest-physical address g is at driver address memory_base + g, for g < memory_bytes.
  // 0 in an identity-mapped VM; a mapping's start in a process guest.
  std::uintptr_t memory_base = 0;
  std::uint64_t memory_bytes = 0;
};

}  // namespace rf::guest
