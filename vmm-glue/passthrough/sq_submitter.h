// SqSubmitter: the device thread of a bounded passthrough device. The guest's SQ and CQ are the
// kernel ring's own, in guest RAM, and no SQE or CQE is copied; but no kernel thread reads the
// SQ by itself. This thread decides how many of the SQEs the guest published the kernel may take
// (io_uring_enter with a to_submit it chooses), so that the kernel never holds more than
// `bound` requests and overflowed CQEs for the ring, whatever the guest does.
//
// Each round it
//   1. snapshots the guest's SQ tail once and checks it against the kernel's head, which it
//      knows without reading guest memory: the baseline plus what io_uring_enter said it
//      consumed (NO_SQARRAY: the kernel drops nothing). A tail more than the SQ size ahead marks
//      the device broken (SqTailJump), as in mediated mode;
//   2. computes the room: bound - (submitted - posted), with `posted` from the kernel's counters
//      (RingLedger), re-read only when the room it last knew of is not enough; that is at most
//      once per (bound - the guest's depth) SQEs for a guest that keeps within its SQ;
//   3. submits min(published, room, budget) with IORING_ENTER_GETEVENTS (which also moves
//      overflowed CQEs into the CQ once the guest has reaped).
// When there is nothing to do it polls for `poll_idle` (yielding the CPU between looks: the io-wq
// worker doing its I/O may be waiting for it), then sets NEED_WAKEUP in the SQ flags
// (an atomic OR: the kernel sets other bits of that word) and sleeps on the kick eventfd. While
// the bound holds SQEs back it looks again after a millisecond, backing off to 64 ms while
// nothing completes (a guest that hides its completions, see docs/threat-model.md, costs the
// host next to nothing); a doorbell looks at once. Completions need no wake-up:
// the kernel runs them as task work on this thread (it interrupts the sleep for that) and
// signals the guest's notification eventfd itself.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "device/broken_reason.h"
#include "device/device_error.h"
#include "passthrough/ring_ledger.h"
#include "util/result.h"
#include "util/unique_fd.h"

namespace rf {

struct SqSubmitterConfig {
  std::uint32_t sq_entries = 0;
  std::uint64_t bound = 0;  // requests in flight plus overflowed CQEs the kernel may hold
  unsigned budget = 256;    // SQEs per io_uring_enter at most
  std::chrono::microseconds poll_idle{50};
  std::optional<unsigned> cpu;
};

// The two ring words the thread touches, in guest RAM.
struct GuestSqWords {
  std::uint32_t* sq_tail = nullptr;   // GUEST-CONTROLLED
  std::uint32_t* sq_flags = nullptr;  // NEED_WAKEUP is ours; the kernel sets the others
};

class SqSubmitter {
 public:
  // `ledger` outlives the submitter. `kernel_head` is the kernel's SQ head at the baseline.
  SqSubmitter(RingLedger& ledger, GuestSqWords words, std::uint32_t kernel_head, int kick_fd, SqSubmitterConfig config);
  ~SqSubmitter();  // stops and joins the thread
  SqSubmitter(const SqSubmitter&) = delete;
  SqSubmitter& operator=(const SqSubmitter&) = delete;

  Result<void, DeviceError> start();
  // Quiesce: the thread takes what the guest had published when it saw the pause (one snapshot
  // of the tail; as far as the bound allows) and nothing after: later SQEs wait in the SQ until
  // resume(). wait_paused() returns once it has done so and stopped (no io_uring_enter of its is
  // under way, none will start), false on timeout.
  void pause();
  bool wait_paused(std::chrono::milliseconds timeout);
  void resume();
  void stop();  // idempotent

  std::uint64_t submitted() const { return submitted_.load(std::memory_order_acquire); }
  std::uint64_t doorbells() const { return doorbells_.load(std::memory_order_relaxed); }
  std::uint64_t throttled() const { return throttled_.load(std::memory_order_relaxed); }
  BrokenReason broken() const { return broken_.reason(); }
  std::string broken_detail() const { return broken_.detail(); }

 private:
  void run();
  bool round(std::uint32_t tail);
  bool submit(std::uint32_t count);
  std::uint64_t room() const;
  void refresh_posted();
  void flush_overflow();
  void sleep();
  void idle_until_woken();
  void mark_broken(BrokenReason reason, std::string detail);
  void wake_thread();
  std::uint32_t load_guest_tail() const;
  void set_need_wakeup(bool on);

  RingLedger& ledger_;
  GuestSqWords words_;
  int kick_fd_;
  SqSubmitterConfig config_;
  UniqueFd control_;  // wakes the thread: pause, resume, stop

  // The thread's own state: never read back from guest memory.
  std::uint32_t kernel_head_;      // the kernel's SQ head: baseline + what it consumed
  std::uint64_t known_posted_ = 0; // CQEs the kernel had posted at the last read of its counters
  bool holding_back_ = false;      // the bound left published SQEs in the SQ
  bool flush_due_ = false;         // a doorbell asked for overflowed CQEs, or the bound is hit
  int backoff_ms_ = 1;             // held back: how long until it looks again
  std::optional<std::uint32_t> pause_tail_;  // the guest's tail when the thread saw the pause

  std::atomic<std::uint64_t> submitted_{0}, doorbells_{0}, throttled_{0};
  std::atomic<bool> stopping_{false};
  std::atomic<bool> pause_requested_{false};
  std::mutex paused_mutex_;
  std::condition_variable paused_cv_;
  bool paused_ = false;
  BrokenFlag broken_;
  std::thread thread_;  // last: started by start()
};

}  // namespace rf
