#include "fuzz/live/ring_accounting.h"

#include <unistd.h>

#include <thread>

#include <fmt/format.h>


namespace rf::fuzz {

namespace {

std::uint32_t* ring_word(const GuestMemory& memory, std::uint64_t gpa) {
  auto span = memory.translate(GuestAddress{gpa}, 4, DeviceAccess::WritesGuest);
  // SAFETY: translate() found the 4 bytes inside guest RAM; the descriptor aligned the field.
  return span ? reinterpret_cast<std::uint32_t*>(span->host) : nullptr;
}

}  // namespace

Settlement settle_passthrough(PassthroughDevice& device, const GuestMemory& memory, const KernelRingCounters& start, bool exact,
                              std::chrono::milliseconds timeout) {
  Settlement s;
  s.exact = exact;
  const abi::RingGeometry& g = device.header().ring;
  std::uint32_t* sq_tail = ring_word(memory, g.sq_tail);
  std::uint32_t* cq_head = ring_word(memory, g.cq_head);
  std::uint32_t* cq_tail = ring_word(memory, g.cq_tail);
  if (sq_tail == nullptr || cq_head == nullptr || cq_tail == nullptr) {
    s.violation = "a ring word the descriptor names is outside guest RAM";
    return s;
  }
  const bool sqpoll = device.submitter() == PassthroughSubmitter::KernelSqpoll;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int settled_rounds = 0;
  for (;;) {
    const BrokenState broken = device.broken();
    s.broken = broken.reason;
    s.broken_detail = broken.detail;
    // A guest can break its own device (a jumped tail, the SQPOLL bound) but never the kernel ring.
    if (broken.reason == BrokenReason::KernelRing || (broken.reason != BrokenReason::None && broken.detail.empty())) {
      s.violation = fmt::format("the device broke: {} ({})", broken_reason_name(broken.reason), broken.detail);
      return s;
    }
    // The watchdog closed the ring: the kernel cancels what it held; nothing is left to count.
    if (broken.reason == BrokenReason::InFlightBound) return s;
    // Reap on the dead guest's behalf: free the whole CQ, then let io_uring_enter(GETEVENTS)
    // move the overflow list into it, until nothing more comes. The device thread, held back
    // by the bound, takes more once there is room.
    std::uint32_t seen = __atomic_load_n(cq_tail, __ATOMIC_ACQUIRE) + 1;
    for (int round = 0; round < 4096; ++round) {  // bounded: the kernel may still be posting
      const std::uint32_t tail = __atomic_load_n(cq_tail, __ATOMIC_ACQUIRE);
      if (tail == seen) break;
      seen = tail;
      __atomic_store_n(cq_head, tail, __ATOMIC_RELEASE);
      device.flush_overflow();
    }
    // And ring its doorbell, which it may have skipped (a scribbled NEED_WAKEUP).
    signal_eventfd(device.kick_fd());
    // The guest has ended: only the kernel, the device thread and we touch the ring now.
    const std::uint32_t tail = __atomic_load_n(sq_tail, __ATOMIC_ACQUIRE);
    auto now = device.kernel_counters(1u << 20);
    if (!now) {
      // fdinfo prints nothing while another task holds the ring's lock (the SQPOLL thread eating
      // a jumped tail's garbage, the device thread submitting): look again.
      if (std::chrono::steady_clock::now() > deadline) {
        s.violation = now.error();
        return s;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      continue;
    }
    if (sqpoll && tail - now->sq_head > g.sq_entries && std::chrono::steady_clock::now() < deadline) {
      // A jumped tail: let the SQ thread finish at most one ring's worth from where it is. (The
      // device thread does not take a jumped tail at all: it marks the device broken.)
      __atomic_store_n(sq_tail, now->sq_head + g.sq_entries, __ATOMIC_RELEASE);
      settled_rounds = 0;
      continue;
    }
    s.consumed = static_cast<std::uint32_t>(now->sq_head - start.sq_head);
    s.completed = std::uint64_t{static_cast<std::uint32_t>(now->cq_tail - start.cq_tail)} + now->overflow -
                  std::min(now->overflow, start.overflow);
    // Everything published was taken; or, with a broken device thread that takes nothing more,
    // everything it took has ended.
    const bool drained = broken.reason == BrokenReason::None ? now->sq_head == tail : s.completed >= s.consumed || !s.exact;
    const bool balanced = s.exact ? s.completed == s.consumed : s.completed <= s.consumed;
    if (drained && balanced && now->complete) {
      if (++settled_rounds == 3) return s;  // the same answer three times, 1 ms apart
    } else {
      settled_rounds = 0;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      s.violation = fmt::format("{} ms after the guest ended the kernel has taken {} SQEs but posted {} CQEs{}", timeout.count(),
                                s.consumed, s.completed,
                                drained ? "" : fmt::format(" (and {} more SQEs are published)", tail - now->sq_head));
      return s;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

Settlement settle_mediated(const MediatedDevice& device, std::chrono::milliseconds timeout) {
  Settlement s;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int settled_rounds = 0;
  for (;;) {
    const MediatorCounters c = device.counters();
    s.consumed = c.consumed;
    s.completed = c.completed;
    s.refused = c.refused_total();
    s.broken = c.broken;
    s.broken_detail = c.broken_detail;
    if (c.broken != BrokenReason::None) {
      // A guest can break its own device (a jumped index) but never the private kernel ring.
      if (c.broken == BrokenReason::KernelRing || c.broken_detail.empty()) {
        s.violation = fmt::format("the device broke: {} ({})", broken_reason_name(c.broken), c.broken_detail);
      }
      return s;
    }
    if (c.in_flight == 0 && c.consumed == c.completed + s.refused) {
      if (++settled_rounds == 3) return s;
    } else {
      settled_rounds = 0;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      s.violation = fmt::format("{} ms after the guest ended the mediator has taken {} SQEs, completed {}, refused {}, {} in flight",
                                timeout.count(), c.consumed, c.completed, s.refused, c.in_flight);
      return s;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

}  // namespace rf::fuzz
