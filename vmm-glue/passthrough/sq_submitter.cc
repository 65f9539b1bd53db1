#include "passthrough/sq_submitter.h"

#include "device/late_look.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "abi/ring_descriptor.h"
#include "device/device_thread.h"
#include "device/eventfd.h"
#include "ring/ring_enter.h"
#include "util/yield_between_looks.h"

namespace rf {

namespace {

// An io_uring_enter that consumed nothing for a reason that passes: the kernel could not
// allocate a request right now (EAGAIN), or a signal came first.
bool transient(int rc) { return rc == -EAGAIN || rc == -EINTR || rc == -EBUSY || rc == -ENOMEM; }

}  // namespace

SqSubmitter::SqSubmitter(RingLedger& ledger, GuestSqWords words, std::uint32_t kernel_head, int kick_fd,
                         SqSubmitterConfig config)
    : ledger_(ledger), words_(words), kick_fd_(kick_fd), config_(config), kernel_head_(kernel_head) {
  if (config_.budget == 0) config_.budget = 1;
}

SqSubmitter::~SqSubmitter() { stop(); }

Result<void, DeviceError> SqSubmitter::start() {
  if (thread_.joinable()) return unexpected(DeviceError{DeviceErrc::WrongState, 0, "the device thread is already running"});
  control_.reset(::eventfd(0, EFD_CLOEXEC));
  if (!control_) {
    const int err = errno;
    return unexpected(DeviceError{DeviceErrc::Eventfd, err, fmt::format("eventfd for the device thread's control: {}", std::strerror(err))});
  }
  auto thread = start_device_thread([this] { run(); }, config_.cpu, "the device thread");
  if (!thread) return unexpected(std::move(thread).error());
  thread_ = std::move(*thread);
  return {};
}

void SqSubmitter::wake_thread() { signal_eventfd(control_.get()); }

void SqSubmitter::pause() {
  {
    std::lock_guard lock(paused_mutex_);
    paused_ = false;
  }
  pause_requested_.store(true, std::memory_order_release);
  wake_thread();
}

bool SqSubmitter::wait_paused(std::chrono::milliseconds timeout) {
  std::unique_lock lock(paused_mutex_);
  return paused_cv_.wait_for(lock, timeout, [&] { return paused_ || !thread_.joinable(); });
}

void SqSubmitter::resume() {
  pause_requested_.store(false, std::memory_order_release);
  wake_thread();
}

void SqSubmitter::stop() {
  if (!thread_.joinable()) return;
  stopping_.store(true, std::memory_order_release);
  wake_thread();
  thread_.join();
}

void SqSubmitter::mark_broken(BrokenReason reason, std::string detail) { broken_.mark(reason, std::move(detail)); }

std::uint32_t SqSubmitter::load_guest_tail() const {
  // GUEST-CONTROLLED: the SQ tail, one load per use; checked against the kernel's head, which
  // the thread knows by itself.
  return std::atomic_ref(*words_.sq_tail).load(std::memory_order_acquire);
}

void SqSubmitter::set_need_wakeup(bool on) {
  // The kernel ORs and clears its own bits (CQ_OVERFLOW, TASKRUN) in the same word: read-modify-write.
  std::atomic_ref flags(*words_.sq_flags);
  if (on) {
    flags.fetch_or(abi::kSqFlagNeedWakeup, std::memory_order_seq_cst);
  } else {
    flags.fetch_and(~abi::kSqFlagNeedWakeup, std::memory_order_relaxed);
  }
}

void SqSubmitter::idle_until_woken() {
  pollfd p{control_.get(), POLLIN, 0};
  while (::poll(&p, 1, -1) < 0 && errno == EINTR) {
  }
  consume_eventfd(control_.get());
}

void SqSubmitter::run() {
  auto last_work = std::chrono::steady_clock::now();
  while (!stopping_.load(std::memory_order_acquire)) {
    if (broken() != BrokenReason::None) {
      // A broken device takes nothing more, and does not spin: wait for the VMM to stop it.
      idle_until_woken();
      continue;
    }
    if (pause_requested_.load(std::memory_order_acquire)) {
      // Take what was published before the pause, then stop.
      if (!pause_tail_) pause_tail_ = load_guest_tail();
      if (*pause_tail_ != kernel_head_ && round(*pause_tail_)) continue;
      {
        std::lock_guard lock(paused_mutex_);
        paused_ = true;
      }
      paused_cv_.notify_all();
      idle_until_woken();  // resume() or stop() wakes it
      if (!pause_requested_.load(std::memory_order_acquire)) pause_tail_.reset();
      last_work = std::chrono::steady_clock::now();
      continue;
    }
    if (round(load_guest_tail())) {
      last_work = std::chrono::steady_clock::now();
      continue;
    }
    if (!holding_back_ && std::chrono::steady_clock::now() - last_work < config_.poll_idle) {
      yield_between_looks();
      continue;
    }
    sleep();
    last_work = std::chrono::steady_clock::now();
  }
}

std::uint64_t SqSubmitter::room() const {
  // submitted - known_posted never exceeds the bound: the thread submits only into the room.
  const std::uint64_t outstanding = submitted_.load(std::memory_order_relaxed) - known_posted_;
  return outstanding >= config_.bound ? 0 : config_.bound - outstanding;
}

void SqSubmitter::flush_overflow() {
  // GETEVENTS moves overflowed CQEs into the CQ once the guest has reaped.
  (void)enter_ring(ledger_.fd(), 0, EnterFlags::GetEvents);
  flush_due_ = false;
}

void SqSubmitter::refresh_posted() {
  // Overflowed CQEs count against the bound until they are in the CQ.
  if (holding_back_ || flush_due_) flush_overflow();
  auto snapshot = ledger_.read_within(std::chrono::microseconds(200));
  if (!snapshot) return;  // keep the older, smaller count: the room only looks smaller
  const std::uint64_t submitted = submitted_.load(std::memory_order_relaxed);
  // The kernel's own counters must agree with ours: it took exactly what io_uring_enter said,
  // and posted no CQE for an SQE it did not take.
  if (snapshot->taken != submitted || snapshot->posted > submitted) {
    mark_broken(BrokenReason::KernelRing,
                fmt::format("the kernel's counters disagree with the device's: it took {} SQEs and posted {} CQEs, "
                            "the device submitted {}",
                            snapshot->taken, snapshot->posted, submitted));
    return;
  }
  // Held back with nothing completed since the last look: look less often.
  backoff_ms_ = holding_back_ && snapshot->posted == known_posted_ ? std::min(backoff_ms_ * 2, 64) : 1;
  known_posted_ = snapshot->posted;
}

bool SqSubmitter::submit(std::uint32_t count) {
  // SAFETY: the ring is open while this thread runs (the device closes it after joining the
  // thread); the kernel reads the SQEs from guest RAM itself and takes at most `count`.
  const int rc = enter_ring(ledger_.fd(), count, EnterFlags::GetEvents);
  if (rc < 0) {
    if (transient(rc)) {
      holding_back_ = true;  // look again in a millisecond rather than spin
      return false;
    }
    mark_broken(BrokenReason::KernelRing, fmt::format("io_uring_enter submitting {} SQEs: {}", count, std::strerror(-rc)));
    return false;
  }
  kernel_head_ += static_cast<std::uint32_t>(rc);
  submitted_.fetch_add(static_cast<std::uint64_t>(rc), std::memory_order_release);
  flush_due_ = false;  // GETEVENTS did it
  return rc > 0;
}

bool SqSubmitter::round(std::uint32_t tail) {
  // GUEST-CONTROLLED: `tail`, snapshotted once by the caller.
  const std::uint32_t pending = tail - kernel_head_;
  if (pending > config_.sq_entries) {
    mark_broken(BrokenReason::SqTailJump, fmt::format("guest SQ tail {} is {} entries ahead of the head {} (the SQ has {})",
                                                      tail, pending, kernel_head_, config_.sq_entries));
    return false;
  }
  if (pending == 0) {
    holding_back_ = false;
    // A doorbell with nothing to submit: the guest may be asking for overflowed CQEs.
    if (flush_due_) flush_overflow();
    return false;
  }
  const std::uint32_t wanted = std::min<std::uint32_t>(pending, config_.budget);
  std::uint64_t room = this->room();
  if (room < wanted) {
    refresh_posted();
    room = this->room();
  }
  if (room == 0 || broken() != BrokenReason::None) {
    if (!holding_back_) throttled_.fetch_add(1, std::memory_order_relaxed);
    holding_back_ = true;
    return false;
  }
  holding_back_ = false;
  return submit(static_cast<std::uint32_t>(std::min<std::uint64_t>(wanted, room)));
}

void SqSubmitter::sleep() {
  set_need_wakeup(true);
  // NEED_WAKEUP must be visible before the last look at the tail, or the guest could publish
  // after that look, see no flag, not ring, and wait for us forever.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (!holding_back_ && load_guest_tail() != kernel_head_) {
    set_need_wakeup(false);
    return;
  }
  // Held back by the bound, the room comes back as the kernel completes requests, which rings
  // no bell here: look again soon (backoff_ms_).
  pollfd fds[2] = {{control_.get(), POLLIN, 0}, {kick_fd_, POLLIN, 0}};
  int ready = ::poll(fds, 2, holding_back_ ? backoff_ms_ : kLateLookMs);
  // The late look (device/late_look.h): a tail published without a doorbell it should have had.
  if (ready == 0 && !holding_back_ && load_guest_tail() == kernel_head_) ready = ::poll(fds, 2, -1);
  if (ready > 0) {
    if ((fds[0].revents & POLLIN) != 0) consume_eventfd(control_.get());
    if ((fds[1].revents & POLLIN) != 0) {
      consume_eventfd(kick_fd_);
      doorbells_.fetch_add(1, std::memory_order_relaxed);
      flush_due_ = true;
      backoff_ms_ = 1;
    }
  }
  set_need_wakeup(false);
}

}  // namespace rf
