// PassthroughDevice: a guest's own restricted kernel ring, living in its RAM.
//
// The SQ/CQ rings and the SQE array sit in a page-aligned device window of guest memory
// (IORING_SETUP_NO_MMAP) right after the ring descriptor; a kernel SQPOLL thread consumes
// what the guest writes. The VMM keeps the ring fd (the guest never sees it) and gives the
// guest two eventfds: `kick` (the guest writes it when the SQ thread sleeps; a doorbell thread
// turns that into IORING_ENTER_SQ_WAKEUP, and a KVM VMM can point KVM_IOEVENTFD at it) and
// `notify` (registered with the ring, so the kernel signals completions on it unless the
// guest set IORING_CQ_EVENTFD_DISABLED; a KVM VMM can point KVM_IRQFD at it).
//
// What keeps the guest in bounds is only what the kernel checks: the restriction set (by
// default the built-in blk-passthrough policy), the fixed files (the disks) and the fixed
// buffers (guest RAM). The guest is told the host-address bias of each buffer window, which
// reveals where its RAM sits in the VMM (docs/threat-model.md).
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "device/guest_device.h"
#include "ring/ring.h"
#include "ring/ring_fdinfo.h"

namespace rf {

class PassthroughDevice;

struct PassthroughConfig {
  // Page-aligned guest-physical address of the device window (descriptor, then rings), which
  // must lie inside one writable region.
  GuestAddress device_window{0x10000};
  unsigned queue_depth = 64;  // SQ entries; the CQ has twice as many
  std::optional<unsigned> sqpoll_cpu;
  std::chrono::milliseconds sqpoll_idle{1000};
  // Share another device's SQPOLL thread (IORING_SETUP_ATTACH_WQ) instead of starting one: one
  // kernel thread then serves every ring attached to it, in turn. The thread keeps the first
  // device's CPU, and idles for the longest sqpoll_idle of the rings attached. It must be a
  // device of this process and outlive this one's set-up (the kernel keeps the thread while
  // any attached ring lives).
  const PassthroughDevice* share_sqpoll_with = nullptr;
  // Default: the built-in blk-passthrough policy (blk-passthrough-ro when every disk is
  // read-only).
  std::optional<RestrictionSet> restrictions;
};

class PassthroughDevice final : public GuestDevice {
 public:
  // `memory` must outlive the device (the kernel pins it and the rings live in it); the device
  // registers its writable regions as fixed buffers and records the table in it.
  static Result<std::unique_ptr<PassthroughDevice>, DeviceError> create(GuestMemory& memory, std::vector<Disk> disks,
                                                                        const PassthroughConfig& config);
  // The bytes of guest RAM from config.device_window that create() would take (the descriptor,
  // the rings and the SQE array, in the sizes the running kernel wants).
  static Result<std::uint64_t, DeviceError> window_bytes(const GuestMemory& memory, std::size_t disk_count,
                                                         const PassthroughConfig& config);
  // Stops the device (stop() with no drain time) if the VMM did not.
  ~PassthroughDevice() override;

  const RingInfo& ring_info() const { return ring_.info(); }
  // The kernel ring's descriptor, borrowed, for audits that read /proc/self/fdinfo (the guest
  // never sees it).
  int ring_fd() const { return ring_.fd(); }
  const RestrictionSet& restrictions() const { return ring_.restrictions(); }
  const SelfCheckReport& self_check() const override { return ring_.self_check(); }
  // Doorbells the VMM turned into SQPOLL wake-ups.
  std::uint64_t wakeups() const { return wakeups_.load(std::memory_order_relaxed); }
  // From the kernel's counters (fdinfo) against those taken when the device was created: SQEs
  // the kernel took minus CQEs it posted (and, with an SQ index array, SQEs it dropped).
  std::optional<std::uint64_t> in_flight() const override;
  // CQEs the kernel posted (to the CQ or its overflow list) since create(), from fdinfo.
  std::optional<std::uint64_t> completions_posted() const override;

 private:
  PassthroughDevice(Ring ring, std::vector<Disk> disks) : GuestDevice(std::move(disks)), ring_(std::move(ring)) {}
  // The ring's options, without the caller memory (which the window provides).
  static RingOptions ring_options(const PassthroughConfig& config);
  void doorbell_loop();
  Result<void, DeviceError> start_io() override;
  void pause_intake() override;
  void resume_intake() override;
  Result<void, DeviceError> wait_drained(std::chrono::milliseconds timeout) override;
  DeviceStopReport stop_io() override;
  // The guest-published SQ tail and the dropped count, read once each from guest memory.
  std::uint32_t guest_sq_tail() const;
  std::uint32_t guest_sq_dropped() const;
  std::uint64_t in_flight_at(const KernelRingCounters& now) const;
  std::uint64_t posted_at(const KernelRingCounters& now) const;
  void wake_doorbell_thread();

  Ring ring_;
  KernelRingCounters baseline_;  // the kernel's counters once create() was done with the ring
  // Ring words in guest RAM (the descriptor's sq_tail and sq_dropped), for quiesce.
  std::uint32_t* sq_tail_word_ = nullptr;
  std::uint32_t* sq_dropped_word_ = nullptr;
  UniqueFd control_;  // wakes the doorbell thread: doorbells held or released, or shutdown
  std::atomic<bool> doorbells_held_{false};
  // The ring's SQPOLL thread serves other rings too (this one attached to another's, or another
  // attached to this one's): its exit then says nothing about this ring.
  mutable std::atomic<bool> sqpoll_shared_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<std::uint64_t> wakeups_{0};
  std::thread doorbell_;  // last: started by start()
};

}  // namespace rf
