// Mediator: the VMM thread that carries a guest's SQEs from its rings in guest RAM to a
// private, restricted kernel ring, and the kernel's completions back.
//
// Each round it
//   1. reaps up to `budget` kernel completions and writes them to the guest CQ;
//   2. snapshots the guest SQ tail once, checks (tail - head) <= entries (a violation marks the
//      device broken: it never spins, aborts or re-reads), and takes up to `budget` SQEs, each
//      copied once, validated (sqe_validator.h) and either submitted under a private user_data
//      or completed at once with the rule's errno;
//   3. publishes the guest SQ head and CQ tail and notifies the guest unless it turned
//      notifications off.
// It never has more requests in flight than the guest CQ has free slots, so every completion
// has a place to go and its tables have a fixed size: a guest that floods or stops reaping
// cannot grow the VMM. When there is nothing to do it polls for `poll_idle` (yielding the CPU
// between looks, see util/yield_between_looks.h), then sets
// NEED_WAKEUP in the guest SQ flags and sleeps on the kick eventfd and the private ring's
// completion eventfd (with a 1 ms timeout while it waits for the guest to free CQ space).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "device/broken_reason.h"
#include "device/device_error.h"
#include "device/handoff.h"
#include "mediated/guest_ring.h"
#include "memory/dirty_log.h"
#include "mediated/sqe_validator.h"
#include "ring/ring.h"
#include "util/unique_fd.h"

namespace rf {


// TEST ONLY: how a mediator misbehaves toward its guest, once, as a hostile device would, so
// that guest drivers' defences can be tested against a real device (docs/linux-guest.md). It
// touches only the guest's own CQ; the host keeps every bound.
enum class CompletionFault {
  None,
  UnknownUserData,  // a CQE whose user_data the guest never submitted
  OversizedResult,  // a CQE whose res is larger than the request
  CqTailJump,       // the CQ tail moved far past the CQEs written
  DroppedCqe,       // one completion never posted: the guest's request waits for ever
};

struct MediatorConfig {
  unsigned budget = 256;  // SQEs taken and completions reaped per round, each
  std::chrono::microseconds poll_idle{50};  // polling before it sleeps
  std::optional<unsigned> cpu;  // pin the mediator thread
  // Sees every SQE just before it goes to the kernel ring (on the mediator thread). For tests
  // and audits that check what the kernel receives.
  std::function<void(const Sqe&)> on_kernel_submit;
  // TEST ONLY: the fault, committed on the completion after `fault_after` honest ones.
  CompletionFault fault = CompletionFault::None;
  std::uint64_t fault_after = 0;
};

struct MediatorCounters {
  std::uint64_t consumed = 0;   // guest SQEs taken from the SQ
  std::uint64_t submitted = 0;  // to the kernel ring
  std::uint64_t completed = 0;  // kernel completions written to the guest CQ
  std::uint64_t posted = 0;     // CQEs written to the guest CQ: completed plus refused
  std::array<std::uint64_t, kRefusalRuleCount> refused{};  // by rule
  std::uint64_t cancelled = 0;  // completed to the guest with -ECANCELED when the device stopped
                                // (consumed = completed + refused + cancelled once nothing is in flight)
  std::uint64_t sleeps = 0;     // times the mediator went to sleep
  std::uint64_t in_flight = 0;  // in the kernel now
  BrokenReason broken = BrokenReason::None;
  std::string broken_detail;
  std::uint64_t refused_total() const;
};

class Mediator {
 public:
  // Borrowed: `kernel` (restricted, enabled, not SQPOLL) and the descriptors stay valid until the
  // mediator is destroyed; `context` points at the device's policy, disks and guest memory.
  Mediator(GuestRing guest, const ValidationContext& context, Ring& kernel, int kernel_eventfd, int kick_fd,
           int notify_fd, MediatorConfig config);
  ~Mediator();  // stops and joins the thread
  Mediator(const Mediator&) = delete;
  Mediator& operator=(const Mediator&) = delete;

  Result<void, DeviceError> start();
  // One round on the caller's thread instead (reap, take, publish): for a VMM that drives the
  // device from its own event loop, and for the ring-consumer fuzz target, which needs every
  // step to happen when it says. Never together with start(); it does nothing once the device
  // is broken. Returns whether the round did any work.
  bool poll_once();
  MediatorCounters counters() const;

  // Quiesce, for a started mediator: pause_intake() makes it take only what the guest had
  // published when it saw the pause (one snapshot of the tail), and nothing after (it keeps
  // reaping the kernel ring and posting those completions); wait_drained() returns true once
  // all of that has been taken and everything taken posted to the guest CQ (SQEs that find no
  // CQ room because the guest does not reap stay in the SQ), false on timeout or when the
  // device is broken (a broken mediator reaps nothing more); resume_intake() undoes the pause.
  void pause_intake();
  void resume_intake();
  bool wait_drained(std::chrono::milliseconds timeout);
  // Stops and joins the thread (the destructor does too); idempotent.
  void stop();
  // Live migration: from now on every guest page the mediator writes is marked in `log` (a read's
  // buffer when its CQE is written, and the pages of `ring_area`, the device window holding the
  // rings, whenever it publishes); null stops it. Returns once the thread marks only the new log.
  bool set_dirty_log(std::shared_ptr<DirtyLog> log, GuestAddress ring_area, std::uint64_t ring_area_bytes);
  // After stop(), once the kernel ring is closed (so no completion can arrive any more): posts a
  // -ECANCELED CQE to the guest for every request still in flight (in the CQ slots promised to
  // them) and, as far as the CQ has room, for every SQE published before the pause that was
  // never taken; publishes and notifies. Nothing when the device is broken (its guest CQ is not
  // to be trusted). Returns how many.
  std::uint32_t cancel_outstanding();

 private:
  void run();
  bool round();  // one round; true if it did any work
  unsigned reap_kernel();
  unsigned consume_guest(std::uint32_t tail);
  bool intake_drained();
  void complete_to_guest(std::uint64_t user_data, std::int32_t res);
  void release_slot(std::uint32_t slot);  // the request in `slot` has its CQE: the slot is free again
  void mark_written(std::uint32_t slot);   // the dirty log: what the request in `slot` wrote
  void mark_ring_area();                   // and the rings the mediator writes
  void wake_thread();
  void publish_and_notify();
  void sleep();
  void mark_broken(BrokenReason reason, std::string detail);
  std::uint32_t cq_room();  // free guest CQ slots not promised to in-flight requests

  GuestRing guest_;
  ValidationContext context_;
  Ring& kernel_;
  int kernel_eventfd_;
  int kick_fd_;
  int notify_fd_;
  MediatorConfig config_;
  UniqueFd stop_;

  // Private ring state: never read back from guest memory.
  std::uint32_t sq_head_ = 0;
  std::uint32_t cq_tail_ = 0;
  std::uint32_t published_cq_tail_ = 0;
  std::uint64_t posted_count_ = 0;  // CQEs written; the counter is updated when they are published
  // In-flight table, fixed at cq_entries: kernel user_data is a slot index.
  std::vector<std::uint64_t> guest_user_data_;
  // What each request writes into guest RAM (a read's buffer; 0 bytes for anything else), from the
  // validated SQE, for the dirty log.
  struct Written {
    GuestAddress gpa;
    std::uint32_t bytes = 0;
  };
  std::vector<Written> written_;
  struct LogSetting {
    std::shared_ptr<DirtyLog> log;
    GuestAddress ring_area;
    std::uint64_t ring_area_bytes = 0;
  };
  LogSetting log_;  // the thread's
  Handoff<LogSetting> log_handoff_;
  std::vector<bool> slot_in_use_;
  std::vector<std::uint32_t> free_slots_;
  std::uint32_t in_flight_count_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> intake_paused_{false};
  std::optional<std::uint32_t> pause_tail_;  // the guest's SQ tail when the mediator saw the pause
  // Set by the thread when the intake is paused and everything taken has been posted.
  std::mutex drained_mutex_;
  std::condition_variable drained_cv_;
  bool drained_ = false;

  std::atomic<std::uint64_t> consumed_{0}, submitted_{0}, completed_{0}, posted_{0}, cancelled_{0}, sleeps_{0},
      in_flight_{0};
  std::array<std::atomic<std::uint64_t>, kRefusalRuleCount> refused_{};
  BrokenFlag broken_;
  std::thread thread_;
};

}  // namespace rf
