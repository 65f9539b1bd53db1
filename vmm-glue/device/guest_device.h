// GuestDevice: what every block device ringfence gives a guest has in common, whatever its
// data path: a device window in guest RAM (the ring descriptor, then the rings), the disks,
// the buffer windows, and two eventfds (the guest's doorbell and its completion notification).
// PassthroughDevice and MediatedDevice build one each; a VMM (and ProcessSandbox) can hold
// either through this class.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "abi/ring_descriptor.h"
#include "disk/disk.h"
#include "memory/guest_memory.h"
#include "ring/restriction.h"
#include "ring/ring.h"
#include "ring/self_check.h"
#include "util/result.h"
#include "util/unique_fd.h"

namespace rf {

enum class DeviceErrc {
  InvalidConfig,  // no disks, too many, a device window outside guest RAM or misaligned
  Ring,           // creating, registering, restricting or enabling the kernel ring failed
  Eventfd,
  Thread,
};
using DeviceError = Error<DeviceErrc>;

// Where a device's set-up time went: wall time of each step of create().
struct DeviceSetupTimes {
  std::chrono::nanoseconds total{0};             // all of create()
  std::chrono::nanoseconds create_ring{0};       // io_uring_setup with R_DISABLED (and the SQPOLL thread)
  std::chrono::nanoseconds register_files{0};    // the disks
  std::chrono::nanoseconds register_buffers{0};  // guest RAM: pinning it, so it grows with its size
  std::chrono::nanoseconds restrict_ring{0};     // the eventfd and the restrictions
  std::chrono::nanoseconds enable{0};            // ENABLE_RINGS and the self-check
  // Everything but pinning guest RAM.
  std::chrono::nanoseconds without_buffers() const { return total - register_buffers; }
};

// The largest length one SQE may carry, as the descriptor tells the guest.
inline constexpr std::uint32_t kDeviceMaxTransfer = 1u << 20;

class GuestDevice {
 public:
  virtual ~GuestDevice() = default;
  GuestDevice(const GuestDevice&) = delete;
  GuestDevice& operator=(const GuestDevice&) = delete;

  abi::Mode mode() const { return header_.mode; }
  GuestAddress descriptor_address() const { return GuestAddress{header_.device_window_gpa}; }
  std::uint64_t device_window_bytes() const { return header_.device_window_bytes; }
  // Borrowed; hand them to the guest (or to KVM_IOEVENTFD / KVM_IRQFD).
  int kick_fd() const { return kick_.get(); }
  int notify_fd() const { return notify_.get(); }
  const std::vector<Disk>& disks() const { return disks_; }
  const std::vector<abi::WindowEntry>& windows() const { return windows_; }
  const abi::DescriptorHeader& header() const { return header_; }
  const DeviceSetupTimes& setup_times() const { return setup_times_; }
  // The self-check of the kernel ring the device submits to (the guest's own ring in
  // passthrough, the mediator's private ring in mediated mode).
  virtual const SelfCheckReport& self_check() const = 0;

 protected:
  explicit GuestDevice(std::vector<Disk> disks) : disks_(std::move(disks)) {}

  std::vector<Disk> disks_;  // registered: the kernel holds its own references too
  UniqueFd kick_;
  UniqueFd notify_;
  abi::DescriptorHeader header_{};
  std::vector<abi::WindowEntry> windows_;
  DeviceSetupTimes setup_times_;
};

// --- Helpers both devices are built with. ---

DeviceError config_error(std::string message);
DeviceError ring_error(const Error<RingErrc>& e);

// Checks what every device needs from its caller: 1..64 disks, a page-aligned window.
Result<void, DeviceError> check_device_basics(const std::vector<Disk>& disks, GuestAddress device_window);

// The caller's restriction set, or else the built-in policy `default_policy`, compiled.
Result<RestrictionSet, DeviceError> device_restrictions(const std::optional<RestrictionSet>& chosen,
                                                        std::string_view default_policy);

// The writable regions of `memory` to register, and how many fixed buffers (= buffer windows)
// they make.
struct BufferPlan {
  std::vector<BufferRegion> regions;
  std::size_t windows = 0;
};
Result<BufferPlan, DeviceError> plan_guest_buffers(const GuestMemory& memory);

// Creates a ring with `options`, registers the disks, guest RAM (recording the buffer table in
// `memory`) and `eventfd`, restricts it with `restrictions`, enables it (self-check included)
// and drains the eventfd the self-check signalled. Records each step's time in `times`.
Result<Ring, DeviceError> build_device_ring(const RingOptions& options, const std::vector<Disk>& disks,
                                            GuestMemory& memory, const BufferPlan& buffers, int eventfd,
                                            const RestrictionSet& restrictions, DeviceSetupTimes& times);

Result<UniqueFd, DeviceError> make_eventfd(const char* what);
// Reads whatever count an eventfd holds, without blocking.
void drain_eventfd(int fd);

// The host memory of [window, window + bytes), which must lie inside one writable region, zeroed.
Result<std::byte*, DeviceError> claim_device_window(const GuestMemory& memory, GuestAddress window, std::uint64_t bytes);
// Bytes the descriptor takes at the start of the device window (page-rounded).
std::uint64_t descriptor_window_bytes(std::size_t disks, std::size_t windows);

// One window per registered fixed-buffer piece of `memory`, in guest-physical order; with the
// host-address bias in passthrough, without it in mediated mode.
std::vector<abi::WindowEntry> buffer_windows(const GuestMemory& memory, abi::Mode mode);
std::vector<abi::DiskEntry> disk_entries(const std::vector<Disk>& disks);
// Encodes the descriptor at `host` (the start of the device window).
Result<void, DeviceError> write_descriptor(std::byte* host, std::uint64_t bytes, const abi::DescriptorHeader& header,
                                           const std::vector<Disk>& disks, const std::vector<abi::WindowEntry>& windows);

}  // namespace rf
