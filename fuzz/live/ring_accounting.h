// Ring accounting: after a hostile guest ends, did every SQE the device took get exactly one
// CQE? The answer comes from the device side, never from the guest:
//   passthrough  the kernel's own counters in /proc/self/fdinfo of the ring (CachedSqHead: SQEs
//                taken; CachedCqTail plus the overflow list: CQEs posted), or the device marked
//                broken with a reason the guest caused (a jumped tail, the SQPOLL bound). With
//                the SQPOLL thread, the guest's SQ tail is first pulled back to within one ring of
//                the kernel's head, so that a tail jump cannot keep it eating garbage for billions
//                of entries;
//   mediated     the mediator's counters (consumed = completed + refused, nothing in flight), or
//                the device marked broken with a reason the guest caused.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "fuzz/live/program.h"
#include "mediated/mediated_device.h"
#include "passthrough/passthrough_device.h"
#include "ring/ring_fdinfo.h"
#include "util/result.h"

namespace rf::fuzz {

struct Settlement {
  std::uint64_t consumed = 0;  // SQEs the device took
  std::uint64_t completed = 0;  // CQEs it posted (passthrough) / completions it wrote (mediated)
  std::uint64_t dropped = 0;   // SQEs the kernel dropped (an SQ index array only; passthrough rings have none)
  std::uint64_t refused = 0;   // mediated: SQEs the validator refused
  bool exact = true;           // false: the program hid CQEs (link chains with CQE_SKIP), only "no more CQEs than SQEs" was checked
  BrokenReason broken = BrokenReason::None;
  std::string broken_detail;
  std::optional<std::string> violation;
};

// The passthrough device's ring after its guest ended. `start` is the counters before the guest
// ran; `exact`: every SQE the program sends yields exactly one CQE (no CQE-skipping link chain).
Settlement settle_passthrough(PassthroughDevice& device, const GuestMemory& memory, const KernelRingCounters& start, bool exact,
                              std::chrono::milliseconds timeout);
Settlement settle_mediated(const MediatedDevice& device, std::chrono::milliseconds timeout);

}  // namespace rf::fuzz
