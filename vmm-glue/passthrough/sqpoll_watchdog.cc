#include "passthrough/sqpoll_watchdog.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "device/device_thread.h"
#include "device/eventfd.h"
#include "ring/ring_enter.h"

namespace rf {

namespace {

timespec to_timespec(std::chrono::nanoseconds d) {
  const auto ns = std::max<std::int64_t>(d.count(), 0);
  return timespec{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
}

}  // namespace

SqpollWatchdog::SqpollWatchdog(RingLedger& ledger, std::uint64_t bound, int kick_fd, SqpollWatchdogConfig config)
    : ledger_(ledger), bound_(bound), kick_fd_(kick_fd), config_(config) {
  if (config_.interval.count() <= 0) config_.interval = std::chrono::milliseconds(1);
}

SqpollWatchdog::~SqpollWatchdog() { stop(); }

Result<void, DeviceError> SqpollWatchdog::start() {
  if (thread_.joinable()) return unexpected(DeviceError{DeviceErrc::WrongState, 0, "the watchdog is already running"});
  control_.reset(::eventfd(0, EFD_CLOEXEC));
  if (!control_) {
    const int err = errno;
    return unexpected(DeviceError{DeviceErrc::Eventfd, err, fmt::format("eventfd for the watchdog's control: {}", std::strerror(err))});
  }
  // Unpinned: it must run whatever the guest does to the SQPOLL thread's CPU. It submits
  // nothing, but it has no use for capabilities either.
  auto thread = start_device_thread([this] { run(); }, std::nullopt, "the watchdog thread");
  if (!thread) return unexpected(std::move(thread).error());
  thread_ = std::move(*thread);
  return {};
}

void SqpollWatchdog::wake_thread() { signal_eventfd(control_.get()); }

void SqpollWatchdog::hold_doorbells(bool held) {
  held_.store(held, std::memory_order_release);
  if (control_) wake_thread();
}

void SqpollWatchdog::stop() {
  if (!thread_.joinable()) return;
  stopping_.store(true, std::memory_order_release);
  wake_thread();
  thread_.join();
}

void SqpollWatchdog::trip(std::string detail) {
  if (!broken_.mark(BrokenReason::InFlightBound, std::move(detail))) return;
  // The kernel stops reading the SQ, cancels what it holds and frees the ring.
  ledger_.close();
}

void SqpollWatchdog::sample() {
  // The SQ thread lets go of the ring's lock between batches: try back to back for a moment.
  auto snapshot = ledger_.read_within(std::chrono::microseconds(1000));
  const auto now = std::chrono::steady_clock::now();
  if (snapshot) {
    last_read_ = now;
    failed_samples_ = 0;
    if (snapshot->outstanding() > bound_) {
      trip(fmt::format("the kernel held {} requests and overflowed CQEs for this ring ({}{} of them overflowed CQEs), "
                       "more than the bound of {}",
                       snapshot->outstanding(), snapshot->overflow_exact ? "" : "at least ", snapshot->overflow, bound_));
    }
    return;
  }
  if (!ledger_.is_open()) return;
  ++failed_samples_;
  // Both: the time, and enough failed samples that it is not just this thread being descheduled.
  const auto unreadable = now - last_read_;
  const std::uint64_t samples_needed = std::max<std::uint64_t>(3, config_.unreadable_limit / config_.interval / 2);
  if (unreadable >= config_.unreadable_limit && failed_samples_ >= samples_needed) {
    trip(fmt::format("the kernel's counters for this ring could not be read for {} ms ({} tries): its SQPOLL thread "
                     "held the ring's lock all that time, as it does when a guest floods its SQ",
                     std::chrono::duration_cast<std::chrono::milliseconds>(unreadable).count(), failed_samples_));
  }
}

void SqpollWatchdog::run() {
  last_read_ = std::chrono::steady_clock::now();
  auto next_sample = last_read_ + config_.interval;
  while (!stopping_.load(std::memory_order_acquire)) {
    const bool serving = broken() == BrokenReason::None;
    const bool held = held_.load(std::memory_order_acquire);
    pollfd fds[2] = {{control_.get(), POLLIN, 0}, {kick_fd_, POLLIN, 0}};
    const nfds_t watched = serving && !held ? 2 : 1;
    // Broken: nothing to watch or wake any more; wait for stop().
    const timespec timeout = to_timespec(next_sample - std::chrono::steady_clock::now());
    const int rc = ::ppoll(fds, watched, serving ? &timeout : nullptr, nullptr);
    if (rc > 0) {
      if ((fds[0].revents & POLLIN) != 0) consume_eventfd(control_.get());
      if (watched == 2 && (fds[1].revents & POLLIN) != 0) {
        consume_eventfd(kick_fd_);
        // SAFETY: the ring is open while it serves (only this thread closes it before stop()).
        // SQ_WAKEUP on a thread that is awake is harmless; the guest only rings when it saw
        // NEED_WAKEUP. GETEVENTS moves overflowed CQEs into the CQ.
        (void)enter_ring(ledger_.fd(), 0, EnterFlags::SqWakeup | EnterFlags::GetEvents);
        doorbells_.fetch_add(1, std::memory_order_relaxed);
      }
    }
    if (serving && std::chrono::steady_clock::now() >= next_sample) {
      sample();
      next_sample = std::chrono::steady_clock::now() + config_.interval;
    }
  }
}

}  // namespace rf
