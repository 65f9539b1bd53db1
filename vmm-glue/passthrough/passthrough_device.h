// PassthroughDevice: a guest's own restricted kernel ring, living in its RAM.
//
// The SQ/CQ rings and the SQE array sit in a page-aligned device window of guest memory
// (IORING_SETUP_NO_MMAP, NO_SQARRAY) right after the ring descriptor. The guest writes SQEs and
// reaps CQEs in place: nothing is copied. The VMM keeps the ring fd (the guest never sees it) and
// gives the guest two eventfds: `kick` (its doorbell; a KVM VMM points KVM_IOEVENTFD at it) and
// `notify` (registered with the ring, so the kernel signals completions on it unless the guest
// set IORING_CQ_EVENTFD_DISABLED; a KVM VMM points KVM_IRQFD at it).
//
// Who takes the guest's SQEs into the kernel (PassthroughSubmitter):
//   DeviceThread (default, bounded)  the device's own thread (SqSubmitter) calls io_uring_enter
//                 with a count it chooses, so the kernel never holds more than in_flight_bound()
//                 requests plus overflowed CQEs for this ring, whatever the guest writes; quiesce
//                 works with the guest running.
//   KernelSqpoll  (opt-in, UNBOUNDED) a kernel SQPOLL thread consumes the SQ by itself; a guest
//                 can make the kernel hold any number of requests and overflowed CQEs until the
//                 watchdog (SqpollWatchdog) notices and closes the ring. Quiesce needs the guest's
//                 vCPUs paused.
//
// What keeps the guest's data in bounds is only what the kernel checks: the restriction set (by
// default the built-in blk-passthrough policy), the fixed files (the disks) and the fixed
// buffers (guest RAM). The guest is told the host-address bias of each buffer window, which
// reveals where its RAM sits in the VMM (docs/threat-model.md). The ring is created with only
// CAP_IPC_LOCK in the creating thread's effective set, and guest requests are issued by threads
// without capabilities, so the kernel refuses the real-time I/O priority class.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <vector>

#include "device/guest_device.h"
#include "passthrough/ring_ledger.h"
#include "passthrough/sq_submitter.h"
#include "passthrough/sqpoll_watchdog.h"
#include "ring/ring.h"

namespace rf {

class PassthroughDevice;

enum class PassthroughSubmitter {
  DeviceThread,  // bounded: the VMM's device thread submits what the bound allows
  KernelSqpoll,  // UNBOUNDED: the kernel's SQPOLL thread takes everything; a watchdog closes the ring
};
std::string_view passthrough_submitter_name(PassthroughSubmitter submitter);

struct PassthroughConfig {
  // Page-aligned guest-physical address of the device window (descriptor, then rings), which
  // must lie inside one writable region.
  GuestAddress device_window{0x10000};
  unsigned queue_depth = 64;  // SQ entries; the CQ has twice as many
  PassthroughSubmitter submitter = PassthroughSubmitter::DeviceThread;
  // Pin the thread that takes the guest's SQEs: the device thread, or the SQPOLL thread.
  std::optional<unsigned> cpu;
  // DeviceThread: how long it polls the guest's SQ after the last work before it sleeps.
  std::chrono::microseconds poll_idle{50};
  // KernelSqpoll: how long the SQPOLL thread spins after the last SQE before it sleeps (every
  // doorbell after that costs this much host CPU again).
  std::chrono::milliseconds sqpoll_idle{1000};
  // KernelSqpoll: share another KernelSqpoll device's SQPOLL thread (IORING_SETUP_ATTACH_WQ)
  // instead of starting one: one kernel thread then serves every ring attached to it, in turn.
  // The thread keeps the first device's CPU, and idles for the longest sqpoll_idle of the rings
  // attached. It must be a device of this process and outlive this one's set-up (the kernel
  // keeps the thread while any attached ring lives).
  const PassthroughDevice* share_sqpoll_with = nullptr;
  SqpollWatchdogConfig watchdog;  // KernelSqpoll
  // Default: the built-in blk-passthrough policy (blk-passthrough-ro when every disk is
  // read-only).
  std::optional<RestrictionSet> restrictions;
};

class PassthroughDevice final : public GuestDevice {
 public:
  // The device keeps `memory` alive (the kernel pins it and the rings live in it) and registers
  // its fixed-buffer plan.
  static Result<std::unique_ptr<PassthroughDevice>, DeviceError> create(GuestMemoryMap memory, std::vector<Disk> disks,
                                                                        const PassthroughConfig& config);
  // The bytes of guest RAM from config.device_window that create() would take (the descriptor,
  // the rings and the SQE array, in the sizes the running kernel wants).
  static Result<std::uint64_t, DeviceError> window_bytes(const GuestMemory& memory, std::size_t disk_count,
                                                         const PassthroughConfig& config);
  // Stops the device (stop() with no drain time) if the VMM did not.
  ~PassthroughDevice() override;

  PassthroughSubmitter submitter() const { return submitter_; }
  const RingInfo& ring_info() const { return ring_.info(); }
  // The kernel's own counters for the ring (fdinfo), for audits and tests, retried for up to
  // `within` while another task holds the ring's lock; fails once the ring is closed (by stop(),
  // or by the watchdog, from another thread: why the ring's descriptor itself is not handed out).
  Result<KernelRingCounters, std::string> kernel_counters(std::size_t max_bytes = kDefaultFdinfoBytes,
                                                          std::chrono::milliseconds within = std::chrono::milliseconds(0)) const {
    return ledger_->read_raw(max_bytes, within);
  }
  // io_uring_enter(GETEVENTS) on the guest's behalf: moves overflowed CQEs into the CQ once it
  // has room (what a guest's doorbell makes the device do). Nothing once the ring is closed.
  void flush_overflow() const { (void)ledger_->enter_if_open(EnterFlags::GetEvents); }
  const RestrictionSet& restrictions() const { return ring_.restrictions(); }
  const SelfCheckReport& self_check() const override { return ring_.self_check(); }
  // The most requests in flight plus overflowed CQEs the kernel may hold for this ring: the CQ
  // size (twice the queue depth). DeviceThread enforces it; KernelSqpoll's watchdog closes the
  // ring once it is crossed.
  std::uint64_t in_flight_bound() const override { return bound_; }
  // Doorbells the device took (each woke its thread, or the SQPOLL thread).
  std::uint64_t doorbells() const;
  // DeviceThread: SQEs it handed to the kernel, and the times the bound held published SQEs
  // back. KernelSqpoll: 0.
  std::uint64_t submitted() const { return submitter_thread_ ? submitter_thread_->submitted() : 0; }
  std::uint64_t throttled() const { return submitter_thread_ ? submitter_thread_->throttled() : 0; }
  // From the kernel's own counters (never from guest memory): requests taken and not completed.
  // KernelSqpoll answers from the watchdog's last reading, so that an observer never makes the
  // kernel print (or lock the ring for) what a flooding guest queued.
  std::optional<std::uint64_t> in_flight() const override;
  // CQEs the kernel posted (to the CQ or its overflow list) since create().
  std::optional<std::uint64_t> completions_posted() const override;
  // SQEs the kernel has taken since create(), from its own counters.
  std::optional<std::uint64_t> taken() const;
  BrokenState broken() const override;

 private:
  PassthroughDevice(GuestMemoryMap memory, Ring ring, std::vector<Disk> disks)
      : GuestDevice(std::move(memory), std::move(disks)), ring_(std::move(ring)) {}
  // The ring's options, without the caller memory (which the window provides) and without the
  // ring to attach to (share_sqpoll_with).
  static RingOptions ring_options(const PassthroughConfig& config);
  Result<void, DeviceError> start_io() override;
  void pause_intake() override;
  void resume_intake() override;
  Result<void, DeviceError> wait_drained(std::chrono::milliseconds timeout) override;
  DeviceStopReport stop_io() override;
  // A reading of the kernel's counters: fresh (bounded retries) for DeviceThread, the watchdog's
  // last for KernelSqpoll.
  std::optional<RingSnapshot> observe() const;

  Ring ring_;
  PassthroughSubmitter submitter_ = PassthroughSubmitter::DeviceThread;
  std::uint64_t bound_ = 0;
  std::chrono::milliseconds watchdog_interval_{2};
  std::optional<ReleaseProbe> release_;  // one more fixed file of the ring, for stop()
  mutable std::optional<RingLedger> ledger_;  // the only reader of the kernel's counters
  // Ring words in guest RAM (the descriptor's sq_tail), for a quiesce of an SQPOLL device.
  std::uint32_t* sq_tail_word_ = nullptr;
  // Last: stopped before anything they use goes away. Exactly one exists.
  std::unique_ptr<SqSubmitter> submitter_thread_;
  std::unique_ptr<SqpollWatchdog> watchdog_;
};

}  // namespace rf
