// SqpollWatchdog: the device thread of an SQPOLL passthrough device (opt-in, UNBOUNDED).
//
// With IORING_SETUP_SQPOLL the kernel's SQ thread takes whatever the guest publishes, as fast as
// the guest publishes it: nothing bounds the requests it holds or the CQEs it overflows (a guest
// that never reaps, or jumps its tail, grows kernel memory by tens of MiB a second; restrictions
// bound opcodes, not resources). The VMM cannot stop the kernel from taking an SQE; it can only
// notice and close the ring. This thread
//   - turns doorbells into IORING_ENTER_SQ_WAKEUP (with GETEVENTS, which also moves overflowed
//     CQEs into the CQ once the guest has reaped), unless quiesce holds them;
//   - every `interval` reads the kernel's counters (RingLedger) and marks the device broken
//     (InFlightBound) and closes the ring when what the kernel holds for it (requests in flight
//     plus overflowed CQEs) is above `bound`, or when it could not read them at all for
//     `unreadable_limit`: the kernel prints nothing while the SQ thread holds the ring's lock,
//     and only a guest that keeps it submitting without pause (a flood) keeps it held that long.
// So the kernel's holdings for this ring exceed the bound for at most about
// interval + unreadable_limit, plus the time the kernel takes to cancel what it holds.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#include "device/broken_reason.h"
#include "device/device_error.h"
#include "passthrough/ring_ledger.h"
#include "util/result.h"
#include "util/unique_fd.h"

namespace rf {

struct SqpollWatchdogConfig {
  std::chrono::milliseconds interval{2};           // between two reads of the kernel's counters
  std::chrono::milliseconds unreadable_limit{50};  // counters unreadable this long: a flood
};

class SqpollWatchdog {
 public:
  // `ledger` outlives the watchdog.
  SqpollWatchdog(RingLedger& ledger, std::uint64_t bound, int kick_fd, SqpollWatchdogConfig config);
  ~SqpollWatchdog();
  SqpollWatchdog(const SqpollWatchdog&) = delete;
  SqpollWatchdog& operator=(const SqpollWatchdog&) = delete;

  Result<void, DeviceError> start();
  // Doorbells stay counted in the kick eventfd (unread) while held.
  void hold_doorbells(bool held);
  void stop();  // idempotent

  std::uint64_t doorbells() const { return doorbells_.load(std::memory_order_relaxed); }
  BrokenReason broken() const { return broken_.reason(); }
  std::string broken_detail() const { return broken_.detail(); }

 private:
  void run();
  void sample();
  void trip(std::string detail);
  void wake_thread();

  RingLedger& ledger_;
  std::uint64_t bound_;
  int kick_fd_;
  SqpollWatchdogConfig config_;
  UniqueFd control_;
  std::chrono::steady_clock::time_point last_read_{};  // the thread's own
  std::uint64_t failed_samples_ = 0;                    // since the last read
  std::atomic<bool> held_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<std::uint64_t> doorbells_{0};
  BrokenFlag broken_;
  std::thread thread_;  // last
};

}  // namespace rf
