#include "ring/ring_enter.h"

#include "sys/syscalls.h"

namespace rf {

static_assert(static_cast<unsigned>(EnterFlags::GetEvents) == IORING_ENTER_GETEVENTS);
static_assert(static_cast<unsigned>(EnterFlags::SqWakeup) == IORING_ENTER_SQ_WAKEUP);

int enter_ring(int ring_fd, unsigned to_submit, EnterFlags flags) {
  return sys::io_uring_enter(ring_fd, to_submit, 0, static_cast<unsigned>(flags), nullptr, 0);
}

}  // namespace rf
