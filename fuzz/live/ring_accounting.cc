#include "fuzz/live/ring_accounting.h"

#include <thread>

#include <fmt/format.h>

#include "sys/syscalls.h"
#include "sys/uapi_compat.h"

namespace rf::fuzz {

namespace {

std::uint32_t* ring_word(GuestMemory& memory, std::uint64_t gpa) {
  auto span = memory.translate(GuestAddress{gpa}, 4, DeviceAccess::WritesGuest);
  // SAFETY: translate() found the 4 bytes inside guest RAM; the descriptor aligned the field.
  return span ? reinterpret_cast<std::uint32_t*>(span->host) : nullptr;
}

}  // namespace

Settlement settle_passthrough(PassthroughDevice& device, GuestMemory& memory, const KernelRingCounters& start,
                              DropAccounting drops, std::chrono::milliseconds timeout) {
  Settlement s;
  s.exact = drops != DropAccounting::Unknown;
  const abi::RingGeometry& g = device.header().ring;
  std::uint32_t* sq_head = ring_word(memory, g.sq_head);
  std::uint32_t* sq_tail = ring_word(memory, g.sq_tail);
  std::uint32_t* sq_dropped = ring_word(memory, g.sq_dropped);
  std::uint32_t* cq_head = ring_word(memory, g.cq_head);
  std::uint32_t* cq_tail = ring_word(memory, g.cq_tail);
  if (sq_head == nullptr || sq_tail == nullptr || sq_dropped == nullptr || cq_head == nullptr || cq_tail == nullptr) {
    s.violation = "a ring word the descriptor names is outside guest RAM";
    return s;
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int settled_rounds = 0;
  for (;;) {
    // Reap on the dead guest's behalf: free the whole CQ, then let io_uring_enter(GETEVENTS)
    // move the overflow list into it, until nothing more comes. The overflow list of a guest
    // that never reaped can hold far more CQEs than fdinfo can print.
    std::uint32_t seen = __atomic_load_n(cq_tail, __ATOMIC_ACQUIRE) + 1;
    for (int round = 0; round < 4096; ++round) {  // bounded: the kernel may still be posting
      const std::uint32_t tail = __atomic_load_n(cq_tail, __ATOMIC_ACQUIRE);
      if (tail == seen) break;
      seen = tail;
      __atomic_store_n(cq_head, tail, __ATOMIC_RELEASE);
      (void)sys::io_uring_enter(device.ring_fd(), 0, 0, IORING_ENTER_GETEVENTS, nullptr, 0);
    }
    // The guest has ended: only the kernel and we touch the ring now.
    const std::uint32_t tail = __atomic_load_n(sq_tail, __ATOMIC_ACQUIRE);
    auto now = read_ring_fdinfo(device.ring_fd());
    if (!now) {
      // fdinfo prints nothing while the SQPOLL thread holds the ring's lock, as it does while it
      // eats a jumped tail's garbage. It then keeps the SQ head word current: clamp from that.
      const std::uint32_t head = __atomic_load_n(sq_head, __ATOMIC_ACQUIRE);
      if (tail - head > g.sq_entries) __atomic_store_n(sq_tail, head + g.sq_entries, __ATOMIC_RELEASE);
      if (std::chrono::steady_clock::now() > deadline) {
        s.violation = now.error();
        return s;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      continue;
    }
    if (tail - now->sq_head > g.sq_entries && std::chrono::steady_clock::now() < deadline) {
      // A jumped tail: let the kernel finish at most one ring's worth from where it is.
      __atomic_store_n(sq_tail, now->sq_head + g.sq_entries, __ATOMIC_RELEASE);
      settled_rounds = 0;
      continue;
    }
    s.consumed = now->sq_head - start.sq_head;
    s.completed = std::uint64_t{static_cast<std::uint32_t>(now->cq_tail - start.cq_tail)} + now->overflow -
                  std::min(now->overflow, start.overflow);
    s.dropped = drops == DropAccounting::Counted ? __atomic_load_n(sq_dropped, __ATOMIC_RELAXED) : 0;
    const bool drained = now->sq_head == tail;
    const bool balanced = s.exact ? s.completed + s.dropped == s.consumed : s.completed <= s.consumed;
    if (drained && balanced) {
      if (++settled_rounds == 3) return s;  // the same answer three times, 1 ms apart
    } else {
      settled_rounds = 0;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      s.violation = fmt::format("{} ms after the guest ended the kernel has taken {} SQEs but posted {} CQEs{}{}", timeout.count(),
                                s.consumed, s.completed, s.dropped != 0 ? fmt::format(" and dropped {}", s.dropped) : "",
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
