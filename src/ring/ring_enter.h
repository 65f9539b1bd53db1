// io_uring_enter on a ring descriptor, for code that drives a ring it does not own as a Ring
// (the passthrough device thread and watchdog, which submit the guest's SQEs from guest RAM).
#pragma once

#include <cstdint>

namespace rf {

enum class EnterFlags : std::uint32_t {
  None = 0,
  GetEvents = 1u << 0,  // IORING_ENTER_GETEVENTS: also moves overflowed CQEs into the CQ once it has room
  SqWakeup = 1u << 1,   // IORING_ENTER_SQ_WAKEUP: wakes a sleeping SQPOLL thread
};
constexpr EnterFlags operator|(EnterFlags a, EnterFlags b) {
  return static_cast<EnterFlags>(static_cast<std::uint32_t>(a) | static_cast<std::uint32_t>(b));
}

// io_uring_enter(ring_fd, to_submit, 0, flags): the number of SQEs the kernel took, or -errno.
int enter_ring(int ring_fd, unsigned to_submit, EnterFlags flags);

}  // namespace rf
