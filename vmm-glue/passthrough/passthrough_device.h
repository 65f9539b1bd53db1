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

#include "abi/ring_descriptor.h"
#include "disk/disk.h"
#include "memory/guest_memory.h"
#include "ring/restriction.h"
#include "ring/ring.h"
#include "util/unique_fd.h"

namespace rf {

enum class DeviceErrc {
  InvalidConfig,  // no disks, too many, a device window outside guest RAM or misaligned
  Ring,           // creating, registering, restricting or enabling the ring failed
  Eventfd,
  Thread,
};
using DeviceError = Error<DeviceErrc>;

// The largest length one SQE may carry, as the descriptor tells the guest.
inline constexpr std::uint32_t kDeviceMaxTransfer = 1u << 20;

struct PassthroughConfig {
  // Page-aligned guest-physical address of the device window (descriptor, then rings), which
  // must lie inside one writable region.
  GuestAddress device_window{0x10000};
  unsigned queue_depth = 64;  // SQ entries; the CQ has twice as many
  std::optional<unsigned> sqpoll_cpu;
  std::chrono::milliseconds sqpoll_idle{1000};
  // Default: the built-in blk-passthrough policy (blk-passthrough-ro when every disk is
  // read-only).
  std::optional<RestrictionSet> restrictions;
};

class PassthroughDevice {
 public:
  // `memory` must outlive the device (the kernel pins it and the rings live in it); the device
  // registers its writable regions as fixed buffers and records the table in it.
  static Result<std::unique_ptr<PassthroughDevice>, DeviceError> create(GuestMemory& memory, std::vector<Disk> disks,
                                                                        const PassthroughConfig& config);
  ~PassthroughDevice();
  PassthroughDevice(const PassthroughDevice&) = delete;
  PassthroughDevice& operator=(const PassthroughDevice&) = delete;

  GuestAddress descriptor_address() const { return window_; }
  std::uint64_t device_window_bytes() const { return window_bytes_; }
  // Borrowed; hand them to the guest (or to KVM_IOEVENTFD / KVM_IRQFD).
  int kick_fd() const { return kick_.get(); }
  int notify_fd() const { return notify_.get(); }

  const std::vector<Disk>& disks() const { return disks_; }
  const std::vector<abi::WindowEntry>& windows() const { return windows_; }
  const abi::DescriptorHeader& header() const { return header_; }
  const RingInfo& ring_info() const { return ring_.info(); }
  const RestrictionSet& restrictions() const { return ring_.restrictions(); }
  const SelfCheckReport& self_check() const { return ring_.self_check(); }
  std::chrono::nanoseconds setup_time() const { return setup_time_; }
  // Doorbells the VMM turned into SQPOLL wake-ups.
  std::uint64_t wakeups() const { return wakeups_.load(std::memory_order_relaxed); }

 private:
  PassthroughDevice(Ring ring, std::vector<Disk> disks) : ring_(std::move(ring)), disks_(std::move(disks)) {}
  void doorbell_loop();

  Ring ring_;
  std::vector<Disk> disks_;  // registered: the kernel holds its own references too
  UniqueFd kick_;
  UniqueFd notify_;
  UniqueFd stop_;  // wakes the doorbell thread for shutdown
  GuestAddress window_;
  std::uint64_t window_bytes_ = 0;
  abi::DescriptorHeader header_{};
  std::vector<abi::WindowEntry> windows_;
  std::chrono::nanoseconds setup_time_{0};
  std::atomic<std::uint64_t> wakeups_{0};
  std::thread doorbell_;  // last: started when everything else is in place
};

}  // namespace rf
