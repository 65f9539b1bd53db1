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
  ~PassthroughDevice() override;

  const RingInfo& ring_info() const { return ring_.info(); }
  // The kernel ring's descriptor, borrowed, for audits that read /proc/self/fdinfo (the guest
  // never sees it).
  int ring_fd() const { return ring_.fd(); }
  const RestrictionSet& restrictions() const { return ring_.restrictions(); }
  const SelfCheckReport& self_check() const override { return ring_.self_check(); }
  // Doorbells the VMM turned into SQPOLL wake-ups.
  std::uint64_t wakeups() const { return wakeups_.load(std::memory_order_relaxed); }

 private:
  PassthroughDevice(Ring ring, std::vector<Disk> disks) : GuestDevice(std::move(disks)), ring_(std::move(ring)) {}
  void doorbell_loop();

  Ring ring_;
  UniqueFd stop_;  // wakes the doorbell thread for shutdown
  std::atomic<std::uint64_t> wakeups_{0};
  std::thread doorbell_;  // last: started when everything else is in place
};

}  // namespace rf
