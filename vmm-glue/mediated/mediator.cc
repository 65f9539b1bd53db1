#include "mediated/mediator.h"

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
#include "device/late_look.h"
#include "util/yield_between_looks.h"

namespace rf {

std::uint64_t MediatorCounters::refused_total() const {
  std::uint64_t total = 0;
  for (std::uint64_t n : refused) total += n;
  return total;
}

Mediator::Mediator(GuestRing guest, const ValidationContext& context, Ring& kernel, int kernel_eventfd, int kick_fd,
                   int notify_fd, MediatorConfig config)
    : guest_(guest), context_(context), kernel_(kernel), kernel_eventfd_(kernel_eventfd), kick_fd_(kick_fd),
      notify_fd_(notify_fd), config_(std::move(config)) {
  // Bounded memory: one slot per guest CQ entry, allocated once.
  guest_user_data_.assign(guest_.cq_entries(), 0);
  written_.assign(guest_.cq_entries(), Written{});
  slot_in_use_.assign(guest_.cq_entries(), false);
  free_slots_.reserve(guest_.cq_entries());
  for (std::uint32_t i = guest_.cq_entries(); i > 0; --i) free_slots_.push_back(i - 1);
  if (config_.budget == 0) config_.budget = 1;
}

Mediator::~Mediator() { stop(); }

void Mediator::stop() {
  if (thread_.joinable()) {
    stopping_.store(true, std::memory_order_relaxed);
    signal_eventfd(stop_.get());
    thread_.join();
  }
}

void Mediator::pause_intake() {
  {
    std::lock_guard lock(drained_mutex_);
    drained_ = false;
  }
  intake_paused_.store(true, std::memory_order_release);
  wake_thread();
}

void Mediator::resume_intake() {
  intake_paused_.store(false, std::memory_order_release);
  wake_thread();  // SQEs the guest queued meanwhile are waiting
}

void Mediator::wake_thread() {
  // Through the doorbell: a sleeping thread notices the change; a spurious doorbell costs it one round.
  signal_eventfd(kick_fd_);
}

void Mediator::release_slot(std::uint32_t slot) {
  slot_in_use_[slot] = false;
  free_slots_.push_back(slot);
  --in_flight_count_;
}

bool Mediator::wait_drained(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::unique_lock lock(drained_mutex_);
  while (!drained_) {
    if (broken_.is_set() || !thread_.joinable()) return false;
    // Wake-ups come from the thread; the 10 ms slices only bound how late a broken device is seen.
    if (drained_cv_.wait_until(lock, std::min(deadline, std::chrono::steady_clock::now() + std::chrono::milliseconds(10))) ==
            std::cv_status::timeout &&
        std::chrono::steady_clock::now() >= deadline) {
      return drained_;
    }
  }
  return true;
}

std::uint32_t Mediator::cancel_outstanding() {
  if (thread_.joinable() || broken_.is_set()) return 0;
  std::uint32_t cancelled = 0;
  for (std::uint32_t slot = 0; slot < slot_in_use_.size(); ++slot) {
    if (!slot_in_use_[slot]) continue;
    mark_written(slot);  // the kernel may have written some of a read before the ring closed
    complete_to_guest(guest_user_data_[slot], -ECANCELED);  // cq_room() promised the slot at submission
    release_slot(slot);
    ++cancelled;
  }
  in_flight_.store(0, std::memory_order_relaxed);
  // SQEs the guest published before the pause (or now, if the thread never saw the pause) that
  // were never taken: each is copied once for its user_data, as far as the guest CQ has room.
  // GUEST-CONTROLLED: the tail; a jump is ignored here (the device is going away).
  const std::uint32_t tail = pause_tail_ ? *pause_tail_ : guest_.load_sq_tail();
  std::uint32_t untaken = 0;
  if (tail - sq_head_ <= guest_.sq_entries()) {
    for (std::uint32_t room = cq_room(); sq_head_ != tail && room > 0; --room) {
      const abi::GuestSqe sqe = guest_.copy_sqe(sq_head_);
      ++sq_head_;
      ++untaken;
      complete_to_guest(sqe.user_data, -ECANCELED);
    }
    if (untaken != 0) {
      guest_.publish_sq_head(sq_head_);
      consumed_.fetch_add(untaken, std::memory_order_relaxed);
    }
  }
  cancelled += untaken;
  cancelled_.fetch_add(cancelled, std::memory_order_relaxed);
  publish_and_notify();
  return cancelled;
}

Result<void, DeviceError> Mediator::start() {
  if (thread_.joinable()) return unexpected(DeviceError{DeviceErrc::WrongState, 0, "the mediator is already running"});
  stop_.reset(::eventfd(0, EFD_CLOEXEC));
  if (!stop_) {
    const int err = errno;
    return unexpected(DeviceError{DeviceErrc::Eventfd, err, fmt::format("eventfd for the mediator's shutdown: {}", std::strerror(err))});
  }
  // Pinned and without capabilities before it takes the first SQE (device/device_thread.h).
  auto thread = start_device_thread([this] { run(); }, config_.cpu, "the mediator thread");
  if (!thread) return unexpected(std::move(thread).error());
  thread_ = std::move(*thread);
  return {};
}

MediatorCounters Mediator::counters() const {
  MediatorCounters c;
  c.consumed = consumed_.load(std::memory_order_relaxed);
  c.submitted = submitted_.load(std::memory_order_relaxed);
  c.completed = completed_.load(std::memory_order_relaxed);
  c.posted = posted_.load(std::memory_order_relaxed);
  c.cancelled = cancelled_.load(std::memory_order_relaxed);
  for (std::size_t i = 0; i < kRefusalRuleCount; ++i) c.refused[i] = refused_[i].load(std::memory_order_relaxed);
  c.sleeps = sleeps_.load(std::memory_order_relaxed);
  c.in_flight = in_flight_.load(std::memory_order_relaxed);
  c.broken = broken_.reason();
  c.broken_detail = broken_.detail();
  return c;
}

void Mediator::mark_broken(BrokenReason reason, std::string detail) { broken_.mark(reason, std::move(detail)); }

void Mediator::run() {
  auto last_work = std::chrono::steady_clock::now();
  while (!stopping_.load(std::memory_order_relaxed)) {
    if (broken_.is_set()) {
      // A broken device does nothing more, and does not spin: wait for the VMM to stop it.
      pollfd p{stop_.get(), POLLIN, 0};
      while (::poll(&p, 1, -1) < 0 && errno == EINTR) {
      }
      return;
    }
    const bool worked = round();
    if (intake_drained()) {
      // Everything taken has been posted and published (round() publishes): quiesced.
      std::lock_guard lock(drained_mutex_);
      if (!drained_) {
        drained_ = true;
        drained_cv_.notify_all();
      }
    }
    if (worked) {
      last_work = std::chrono::steady_clock::now();
      continue;
    }
    if (std::chrono::steady_clock::now() - last_work < config_.poll_idle) {
      yield_between_looks();
      continue;
    }
    sleep();
    last_work = std::chrono::steady_clock::now();
  }
}

bool Mediator::poll_once() {
  if (thread_.joinable() || broken_.is_set()) return false;
  return round();
}

bool Mediator::intake_drained() {
  if (!intake_paused_.load(std::memory_order_acquire) || !pause_tail_ || in_flight_count_ != 0) return false;
  // What the guest published before the pause has been taken, or the rest waits for CQ room the
  // guest does not free: a guest cannot hold a quiesce up by not reaping.
  return sq_head_ == *pause_tail_ || cq_room() == 0;
}

bool Mediator::set_dirty_log(std::shared_ptr<DirtyLog> log, GuestAddress ring_area, std::uint64_t ring_area_bytes) {
  LogSetting setting{std::move(log), ring_area, ring_area_bytes};
  if (!thread_.joinable()) {  // driven by poll_once(), or not started: the caller's own thread
    log_ = std::move(setting);
    return true;
  }
  return log_handoff_.give(std::move(setting), [this] { wake_thread(); }, std::chrono::seconds(1));
}

void Mediator::mark_written(std::uint32_t slot) {
  if (log_.log && written_[slot].bytes != 0) log_.log->mark(written_[slot].gpa, written_[slot].bytes);
}

void Mediator::mark_ring_area() {
  if (log_.log) log_.log->mark(log_.ring_area, log_.ring_area_bytes);
}

bool Mediator::round() {
  if (auto setting = log_handoff_.take()) log_ = std::move(*setting);  // between requests
  const unsigned reaped = reap_kernel();
  unsigned taken = 0;
  if (!intake_paused_.load(std::memory_order_acquire)) {
    pause_tail_.reset();
    taken = consume_guest(guest_.load_sq_tail());  // GUEST-CONTROLLED: the tail, once per round
  } else {
    // Paused: take what the guest had published when the pause was seen (one snapshot of the
    // tail), and nothing after it.
    if (!pause_tail_) pause_tail_ = guest_.load_sq_tail();  // GUEST-CONTROLLED: checked in consume_guest
    taken = consume_guest(*pause_tail_);
  }
  if (reaped == 0 && taken == 0) return false;
  publish_and_notify();
  return true;
}

std::uint32_t Mediator::cq_room() {
  // GUEST-CONTROLLED: the CQ head. It may only trail the tail we published, by at most the CQ
  // size; anything else is a broken guest.
  const std::uint32_t head = guest_.load_cq_head();
  const std::uint32_t used = cq_tail_ - head;
  if (used > guest_.cq_entries()) {
    mark_broken(BrokenReason::CqHeadJump,
                fmt::format("guest CQ head {} is not within {} entries behind the tail {}", head, guest_.cq_entries(), cq_tail_));
    return 0;
  }
  const std::uint32_t free = guest_.cq_entries() - used;
  return free > in_flight_count_ ? free - in_flight_count_ : 0;
}

unsigned Mediator::consume_guest(std::uint32_t tail) {
  // GUEST-CONTROLLED: `tail`, snapshotted once by the caller.
  const std::uint32_t pending = tail - sq_head_;
  if (pending > guest_.sq_entries()) {
    mark_broken(BrokenReason::SqTailJump,
                fmt::format("guest SQ tail {} is {} entries ahead of the head {} (the SQ has {})", tail, pending, sq_head_,
                            guest_.sq_entries()));
    return 0;
  }
  std::uint32_t room = pending == 0 ? 0 : cq_room();
  unsigned taken = 0;
  unsigned pushed = 0;
  while (taken < pending && taken < config_.budget && room > 0 && kernel_.sq().space_left() > 0) {
    const abi::GuestSqe sqe = guest_.copy_sqe(sq_head_);  // the only read of this SQE
    ++sq_head_;
    ++taken;
    --room;
    auto request = validate_guest_sqe(sqe, context_);
    if (!request) {
      refused_[static_cast<std::size_t>(request.error())].fetch_add(1, std::memory_order_relaxed);
      complete_to_guest(sqe.user_data, refusal_errno(request.error()));
      continue;
    }
    const std::uint32_t slot = free_slots_.back();  // room > 0 means a slot is free
    free_slots_.pop_back();
    slot_in_use_[slot] = true;
    guest_user_data_[slot] = sqe.user_data;
    // A read writes its buffer: in mediated mode the SQE's address is guest-physical (no bias),
    // validated to lie in guest RAM.
    written_[slot] = request->op == SqeOpcode::ReadFixed ? Written{GuestAddress{sqe.addr}, request->len} : Written{};
    const Sqe kernel_request = kernel_sqe(*request).with_user_data(slot);
    if (config_.on_kernel_submit) config_.on_kernel_submit(kernel_request);
    kernel_.try_push(kernel_request);  // space checked above
    ++in_flight_count_;
    ++pushed;
  }
  if (taken != 0) {
    guest_.publish_sq_head(sq_head_);  // the slots are the guest's again: we hold copies
    mark_ring_area();
    consumed_.fetch_add(taken, std::memory_order_relaxed);
  }
  if (pushed != 0) {
    in_flight_.store(in_flight_count_, std::memory_order_relaxed);
    if (auto submitted = kernel_.submit(); !submitted) {
      mark_broken(BrokenReason::KernelRing, "submitting to the private ring: " + submitted.error().message);
    } else {
      submitted_.fetch_add(pushed, std::memory_order_relaxed);
    }
  }
  return taken;
}

unsigned Mediator::reap_kernel() {
  unsigned reaped = 0;
  while (reaped < config_.budget) {
    const auto cqe = kernel_.pop_completion();
    if (!cqe) break;
    const std::uint64_t slot = cqe->user_data;
    if (slot >= slot_in_use_.size() || !slot_in_use_[slot]) {
      mark_broken(BrokenReason::KernelRing, fmt::format("the private ring completed unknown user_data {}", slot));
      break;
    }
    mark_written(static_cast<std::uint32_t>(slot));  // the kernel is done with the buffer: before the CQE says so
    complete_to_guest(guest_user_data_[slot], cqe->res);
    release_slot(static_cast<std::uint32_t>(slot));
    ++reaped;
  }
  if (reaped != 0) {
    completed_.fetch_add(reaped, std::memory_order_relaxed);
    in_flight_.store(in_flight_count_, std::memory_order_relaxed);
  }
  return reaped;
}

void Mediator::complete_to_guest(std::uint64_t user_data, std::int32_t res) {
  if (config_.fault != CompletionFault::None && posted_count_ == config_.fault_after) {
    switch (config_.fault) {  // TEST ONLY (MediatorConfig::fault): the guest's CQ, nothing of the host's
      case CompletionFault::UnknownUserData: user_data = ~user_data; break;
      case CompletionFault::OversizedResult: res = res >= 0 ? res + (1 << 20) : (1 << 20); break;
      case CompletionFault::CqTailJump: cq_tail_ += guest_.cq_entries() / 2 + 1; break;
      case CompletionFault::DroppedCqe: ++posted_count_; return;
      case CompletionFault::None: break;
    }
  }
  // cq_room() promised this slot: it is free in the guest CQ.
  guest_.write_cqe(cq_tail_, user_data, res);
  ++cq_tail_;
  ++posted_count_;
}

void Mediator::publish_and_notify() {
  if (cq_tail_ == published_cq_tail_) return;
  guest_.publish_cq_tail(cq_tail_);  // release: the CQEs above are visible first
  mark_ring_area();
  published_cq_tail_ = cq_tail_;
  posted_.store(posted_count_, std::memory_order_relaxed);
  // The guest turns notifications off before it polls and back on (then re-checks the CQ)
  // before it waits; reading its flag after publishing the tail means it misses nothing.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if ((guest_.load_cq_flags() & abi::kCqFlagNotifyDisabled) == 0) {  // GUEST-CONTROLLED: only its own wake-ups
    signal_eventfd(notify_fd_);
  }
}

void Mediator::sleep() {
  guest_.store_sq_flags(abi::kSqFlagNeedWakeup);
  mark_ring_area();
  // The flag must be visible before we look at the tail one last time, or the guest could
  // publish after our look, see no flag, not kick, and wait for us forever.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  // Paused, only what was published before the pause is waiting; the rest waits for
  // resume_intake(), which wakes us.
  const bool guest_waiting = intake_paused_.load(std::memory_order_acquire) ? pause_tail_ && *pause_tail_ != sq_head_
                                                                            : guest_.load_sq_tail() != sq_head_;
  const bool room = guest_waiting && cq_room() > 0;
  if (room || kernel_.cq().ready() != 0 || broken_.is_set()) {
    guest_.store_sq_flags(0);
    return;
  }
  // With SQEs waiting but no CQ room, the guest frees room by reaping, which rings no bell:
  // look again every millisecond rather than spin.
  pollfd fds[3] = {{kick_fd_, POLLIN, 0}, {kernel_eventfd_, POLLIN, 0}, {stop_.get(), POLLIN, 0}};
  sleeps_.fetch_add(1, std::memory_order_relaxed);
  int ready = ::poll(fds, 3, guest_waiting ? 1 : kLateLookMs);
  // The late look (device/late_look.h): a tail published without a doorbell it should have had.
  if (ready == 0 && !guest_waiting &&
      (intake_paused_.load(std::memory_order_acquire) || guest_.load_sq_tail() == sq_head_)) {
    ready = ::poll(fds, 3, -1);
  }
  if (ready > 0) {
    if ((fds[0].revents & POLLIN) != 0) consume_eventfd(kick_fd_);
    if ((fds[1].revents & POLLIN) != 0) consume_eventfd(kernel_eventfd_);
  }
  guest_.store_sq_flags(0);
}

}  // namespace rf
