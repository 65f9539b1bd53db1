// Why a device stopped serving its guest before the VMM stopped it. A broken device takes
// nothing more from the guest (and never spins); the VMM's next step is stop().
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

namespace rf {

enum class BrokenReason : std::uint32_t {
  None = 0,
  SqTailJump,     // the guest's SQ tail is more than the SQ size ahead of the head
  CqHeadJump,     // mediated: the guest's CQ head is ahead of the tail the mediator published
  KernelRing,     // the kernel ring failed (a submit error, an unknown completion, counters that disagree)
  InFlightBound,  // passthrough with the kernel's SQPOLL thread: the guest made the kernel hold more
                  // requests and overflowed CQEs than the bound, or kept its counters unreadable;
                  // the watchdog closed the ring
  Virtqueue,      // virtio: the guest broke the virtqueue protocol (an avail index jump, a bad
                  // descriptor chain); not a C API device's reason
};

std::string_view broken_reason_name(BrokenReason reason);

// A device thread's broken state: set once (the first reason stays), read from any thread.
class BrokenFlag {
 public:
  // False if the flag was already set (this reason is dropped).
  bool mark(BrokenReason reason, std::string detail) {
    std::lock_guard lock(mutex_);
    if (reason_.load(std::memory_order_relaxed) != BrokenReason::None) return false;
    detail_ = std::move(detail);
    reason_.store(reason, std::memory_order_release);
    return true;
  }
  BrokenReason reason() const { return reason_.load(std::memory_order_acquire); }
  bool is_set() const { return reason() != BrokenReason::None; }
  std::string detail() const {
    std::lock_guard lock(mutex_);
    return detail_;
  }

 private:
  std::atomic<BrokenReason> reason_{BrokenReason::None};
  mutable std::mutex mutex_;
  std::string detail_;
};

}  // namespace rf
