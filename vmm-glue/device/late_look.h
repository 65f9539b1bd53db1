// The late look: a device that went to sleep with its doorbell flag set looks at the guest's
// tail once more a moment into the sleep; a virtio queue also looks once more at whether the
// guest asked for an interrupt for used entries it published (the same race, the other way).
//
// The doorbell protocol is a Dekker pair (docs/abi.md, "Doorbell and notification"): the guest
// publishes its tail, issues a full barrier and reads the flag; the device sets the flag, issues a
// full barrier and reads the tail. It needs the guest's barrier to be a real one. Under QEMU's
// single-threaded TCG (a guest with one vCPU) it is not: TCG leaves out host fences when it
// believes no other thread can see the guest's memory, but a vhost-user back-end does. The
// guest's tail store can then still sit in the host's store buffer while the guest reads a flag
// not yet set, and both sides miss: the guest does not ring, the device sleeps on SQEs that are
// there. rfblk's fio runs under TCG met this every few hundred thousand I/Os. One look a
// millisecond into the sleep, when any store has long been visible, turns that into a
// millisecond's delay; a guest that really published nothing costs one extra wake-up per sleep.
#pragma once

namespace rf {

inline constexpr int kLateLookMs = 1;

}  // namespace rf
