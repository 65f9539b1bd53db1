#include "passthrough/ring_ledger.h"

#include <cerrno>
#include <thread>

#include "ring/ring_enter.h"

namespace rf {

Result<RingLedger, std::string> RingLedger::create(Ring& ring, std::size_t fdinfo_bytes) {
  RingLedger ledger(ring, ring.fd(), fdinfo_bytes);
  // Nothing is queued yet and no thread drives the ring: the baseline reads at once, but an
  // SQPOLL thread may still hold the lock for a moment after the self-check.
  auto baseline = read_ring_fdinfo_within(ring.fd(), std::chrono::seconds(1), fdinfo_bytes);
  if (!baseline) return unexpected("reading the new ring's counters: " + baseline.error());
  ledger.previous_ = *baseline;
  ledger.total_.overflow = baseline->overflow;  // the self-check leaves none; counted as it is
  ledger.total_.sq_head = baseline->sq_head;
  ledger.last_ = ledger.total_;
  ledger.at_ = std::chrono::steady_clock::now();
  return ledger;
}

RingLedger::RingLedger(RingLedger&& other) noexcept
    : ring_(other.ring_), fd_(other.fd_), fdinfo_bytes_(other.fdinfo_bytes_) {
  std::scoped_lock lock(other.mutex_, other.last_mutex_);
  open_.store(other.open_.load());
  previous_ = other.previous_;
  total_ = other.total_;
  last_ = other.last_;
  at_ = other.at_;
  other.open_.store(false);
}

Result<RingSnapshot, std::string> RingLedger::read_locked() {
  if (!open_) return unexpected(std::string("the ring is closed"));
  auto now = read_ring_fdinfo(fd_, fdinfo_bytes_);
  if (!now) return unexpected(std::move(now).error());
  // Unsigned differences: the kernel's counters wrap at 2^32.
  total_.taken += static_cast<std::uint32_t>(now->sq_head - previous_.sq_head);
  total_.posted += static_cast<std::uint32_t>(now->cq_tail - previous_.cq_tail);
  total_.overflow = now->overflow;
  total_.overflow_exact = now->complete;
  total_.sq_head = now->sq_head;
  previous_ = *now;
  std::lock_guard last_lock(last_mutex_);
  last_ = total_;
  at_ = std::chrono::steady_clock::now();
  return total_;
}

Result<RingSnapshot, std::string> RingLedger::read() {
  std::lock_guard lock(mutex_);
  return read_locked();
}

Result<RingSnapshot, std::string> RingLedger::read_within(std::chrono::microseconds budget) {
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + budget;
  for (;;) {
    {
      std::lock_guard lock(mutex_);
      auto snapshot = read_locked();
      if (snapshot || !open_) return snapshot;
      if (std::chrono::steady_clock::now() >= deadline) return snapshot;
    }
    // The lock holder is usually done within microseconds (one batch of SQEs).
    if (std::chrono::steady_clock::now() - start > std::chrono::microseconds(200)) {
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
  }
}

RingSnapshot RingLedger::last() const {
  std::lock_guard lock(last_mutex_);
  return last_;
}

std::chrono::steady_clock::time_point RingLedger::last_at() const {
  std::lock_guard lock(last_mutex_);
  return at_;
}

Result<KernelRingCounters, std::string> RingLedger::read_raw(std::size_t max_bytes, std::chrono::milliseconds within) const {
  const auto deadline = std::chrono::steady_clock::now() + within;
  for (;;) {
    {
      std::lock_guard lock(mutex_);
      if (!open_) return unexpected(std::string("the ring is closed"));
      auto counters = read_ring_fdinfo(fd_, max_bytes);
      if (counters || std::chrono::steady_clock::now() >= deadline) return counters;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

int RingLedger::enter_if_open(EnterFlags flags) const {
  std::lock_guard lock(mutex_);
  if (!open_) return -EBADF;
  // SAFETY: the lock keeps the descriptor open (close() takes it); no SQE is submitted.
  return enter_ring(fd_, 0, flags);
}

void RingLedger::close() {
  std::lock_guard lock(mutex_);
  if (!open_.load()) return;
  open_.store(false, std::memory_order_release);
  ring_->close();
}

bool RingLedger::is_open() const { return open_.load(std::memory_order_acquire); }

}  // namespace rf
