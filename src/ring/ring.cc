#include "ring/ring.h"

#include <cerrno>
#include <ctime>

#include <fmt/format.h>

#include "ring/registered_files.h"
#include "sys/syscalls.h"
#include "util/address.h"

namespace rf {

namespace {
RingError enter_error(int err, const char* what) {
  return RingError{RingErrc::Enter, err, fmt::format("io_uring_enter ({}) failed: {}", what, errno_label(err))};
}
}  // namespace

Result<unsigned, RingError> Ring::submit() {
  SubmissionQueue& sq = core_.sq();
  const unsigned published = sq.publish();
  if (info().sqpoll) {
    // The SQPOLL thread consumes the SQ on its own; it only needs a kick when it sleeps.
    if (sq.needs_wakeup()) {
      const int rc = sys::io_uring_enter(fd(), 0, 0, IORING_ENTER_SQ_WAKEUP, nullptr, 0);
      if (rc < 0) return unexpected(enter_error(-rc, "SQ wake-up"));
    }
    return published;
  }
  const unsigned pending = sq.unconsumed();
  if (pending == 0) return published;
  const int rc = sys::io_uring_enter(fd(), pending, 0, 0, nullptr, 0);
  if (rc < 0) return unexpected(enter_error(-rc, "submit"));
  return published;
}

Result<Cqe, RingError> Ring::wait_completion(std::chrono::milliseconds timeout) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + timeout;
  SubmissionQueue& sq = core_.sq();
  while (true) {
    if (auto cqe = core_.cq().pop()) return *cqe;
    const auto remaining = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - Clock::now());
    if (remaining.count() <= 0) {
      return unexpected(RingError{RingErrc::Timeout, ETIME,
                                  fmt::format("no completion within {} ms", timeout.count())});
    }
    __kernel_timespec ts{};
    ts.tv_sec = remaining.count() / 1'000'000'000;
    ts.tv_nsec = remaining.count() % 1'000'000'000;
    io_uring_getevents_arg arg{};
    arg.ts = address_of(&ts);
    unsigned flags = IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG;
    unsigned to_submit = 0;
    if (info().sqpoll) {
      if (sq.unconsumed() != 0 && sq.needs_wakeup()) flags |= IORING_ENTER_SQ_WAKEUP;
    } else {
      to_submit = sq.unconsumed();
    }
    // SAFETY: arg and ts live until the call returns; EXT_ARG tells the kernel arg's layout.
    const int rc = sys::io_uring_enter(fd(), to_submit, 1, flags, &arg, sizeof(arg));
    if (rc < 0 && rc != -ETIME && rc != -EINTR) return unexpected(enter_error(-rc, "wait"));
  }
}

Result<Cqe, RingError> Ring::submit_and_wait(const Sqe& sqe, std::chrono::milliseconds timeout) {
  if (!try_push(sqe)) {
    return unexpected(RingError{RingErrc::Enter, EBUSY, "the submission queue is full"});
  }
  auto submitted = submit();
  if (!submitted) return unexpected(std::move(submitted).error());
  return wait_completion(timeout);
}

Result<void, RingError> Ring::register_files(std::span<const int> fds) { return rf::register_files(fd(), fds); }

Result<BufferTable, RingError> Ring::register_buffers(std::span<const BufferRegion> regions) {
  return plan_and_register_buffers(fd(), regions);
}

int Ring::probe_register_opcode(unsigned op) { return sys::io_uring_register(fd(), op, nullptr, 0); }

}  // namespace rf
