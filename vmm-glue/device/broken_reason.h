// Why a device stopped serving its guest before the VMM stopped it. A broken device takes
// nothing more from the guest (and never spins); the VMM's next step is stop().
#pragma once

#include <cstdint>
#include <string_view>

namespace rf {

enum class BrokenReason : std::uint32_t {
  None = 0,
  SqTailJump,     // the guest's SQ tail is more than the SQ size ahead of the head
  CqHeadJump,     // mediated: the guest's CQ head is ahead of the tail the mediator published
  KernelRing,     // the kernel ring failed (a submit error, an unknown completion, counters that disagree)
  InFlightBound,  // passthrough with the kernel's SQPOLL thread: the guest made the kernel hold more
                  // requests and overflowed CQEs than the bound, or kept its counters unreadable;
                  // the watchdog closed the ring
};

std::string_view broken_reason_name(BrokenReason reason);

}  // namespace rf
