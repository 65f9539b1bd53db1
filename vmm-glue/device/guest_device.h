// GuestDevice: what every block device ringfence gives a guest has in common, whatever its
// data path: a device window in guest RAM (the ring descriptor, then the rings), the disks,
// the buffer windows, and two eventfds (the guest's doorbell and its completion notification).
// PassthroughDevice and MediatedDevice build one each; a VMM (and ProcessSandbox) can hold
// either through this class.
//
// Lifecycle (one VMM thread drives it; the accessors may be called from any thread):
//
//   create() ──► Created ──start()──► Running ◄──resume()── Quiesced
//                                        └─────quiesce()─────►┘
//   stop() from any state ──► Stopped (then only the accessors and the destructor)
//
// quiesce() takes no more guest SQEs and waits until every request the device took has
// completed, so the VMM can snapshot, migrate or re-plan memory with nothing in flight. stop()
// waits (bounded) for in-flight requests, then closes the kernel ring: the kernel cancels
// whatever is left and releases the pinned guest RAM; stop() returns once it has (or says it
// did not). With passthrough's opt-in SQPOLL thread the kernel reads the guest's SQ by itself
// from the moment the ring is enabled (inside create()), so only a guest whose vCPUs are paused
// can be quiesced there; docs/integration.md has the details.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "abi/ring_descriptor.h"
#include "device/broken_reason.h"
#include "device/device_error.h"
#include "device/eventfd.h"
#include "device/release_probe.h"
#include "disk/disk.h"
#include "memory/dirty_log.h"
#include "memory/guest_memory_builder.h"
#include "ring/restriction.h"
#include "ring/ring.h"
#include "ring/ring_options.h"
#include "ring/self_check.h"
#include "util/result.h"
#include "util/unique_fd.h"

namespace rf {


enum class DeviceState { Created, Running, Quiesced, Stopped };
std::string_view device_state_name(DeviceState state);

// What stop() did with the guest's outstanding requests.
struct DeviceStopReport {
  std::uint64_t drained = 0;    // completed normally while stop() waited
  std::uint64_t cancelled = 0;  // not drained. Passthrough: requests the kernel held when its ring
                                // closed (it completes or cancels each, posting into the CQ in guest RAM).
                                // Mediated: each got a -ECANCELED CQE from the mediator, whether
                                // the kernel had it or it was published and never taken.
  bool counted = true;          // passthrough: false when the kernel's counters could not be read
  // The kernel is done with guest RAM: no request of this device can still read or write it,
  // and its pages are unpinned. Both modes register one more fixed file after the disks
  // (ReleaseProbe); the kernel drops a ring's fixed files only once its last request has ended
  // and its buffers are unregistered. stop() waits for that up to
  // kReleaseTimeout; false means it did not happen in that time: keep guest RAM mapped and do
  // not reuse it.
  bool released = false;
};

// How long stop() waits for the kernel to free a closed ring.
inline constexpr std::chrono::seconds kReleaseTimeout{10};

// Why a device broke, once it has.
struct BrokenState {
  BrokenReason reason = BrokenReason::None;
  std::string detail;
};

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
  const GuestMemory& memory() const { return *memory_; }
  // The self-check of the kernel ring the device submits to (the guest's own ring in
  // passthrough, the mediator's private ring in mediated mode).
  virtual const SelfCheckReport& self_check() const = 0;

  DeviceState state() const { return state_.load(std::memory_order_acquire); }
  // Created -> Running: the device thread (passthrough; the watchdog with the opt-in SQPOLL
  // thread) or the mediator thread (mediated) starts.
  Result<void, DeviceError> start();
  // Running -> Quiesced: the device takes no more guest SQEs and returns once every request it
  // took has completed (its CQE is in the guest CQ, or in the kernel's overflow list in
  // passthrough). On Timeout or Broken it stays Running.
  Result<void, DeviceError> quiesce(std::chrono::milliseconds timeout);
  // Quiesced -> Running.
  Result<void, DeviceError> resume();
  // Any state -> Stopped: waits up to `drain_timeout` for the requests in flight, stops the
  // device's thread and closes the kernel ring (see DeviceStopReport). A second call does nothing.
  DeviceStopReport stop(std::chrono::milliseconds drain_timeout);
  // Requests the device took from the guest that have not completed, from the device's own
  // accounting (never from guest memory); nullopt when it cannot tell right now.
  virtual std::optional<std::uint64_t> in_flight() const = 0;
  // Completions the device has posted to the guest since create(), from its own accounting;
  // nullopt when it cannot tell right now.
  virtual std::optional<std::uint64_t> completions_posted() const = 0;
  // The most requests in flight (plus, in passthrough, CQEs in the kernel's overflow list) the
  // kernel may hold for this device: the guest CQ's size. Mediated and bounded passthrough never
  // exceed it; an SQPOLL passthrough device is closed by its watchdog when it does.
  virtual std::uint64_t in_flight_bound() const = 0;
  // Whether the device broke (it then takes nothing more from the guest) and why.
  virtual BrokenState broken() const = 0;
  // Live migration (memory/dirty_log.h): from now on, mark every guest page the device writes in
  // `log` (null: stop marking). False when the device cannot: a passthrough ring's kernel writes
  // guest RAM with nobody to see it. Returns once the device marks only the new log.
  virtual bool set_dirty_log(std::shared_ptr<DirtyLog> log) { return log == nullptr; }

 protected:
  GuestDevice(GuestMemoryMap memory, std::vector<Disk> disks) : memory_(std::move(memory)), disks_(std::move(disks)) {}

  // What each data path does for the lifecycle calls; the state checks are the base class's.
  virtual Result<void, DeviceError> start_io() = 0;
  virtual void pause_intake() = 0;
  virtual void resume_intake() = 0;
  // After pause_intake(): waits until nothing is in flight. Fails with Timeout or Broken.
  virtual Result<void, DeviceError> wait_drained(std::chrono::milliseconds timeout) = 0;
  // Stops the thread, closes the kernel ring and settles what was in flight (`drained` is filled
  // in by the caller from wait_drained's outcome).
  virtual DeviceStopReport stop_io() = 0;

  // The map the device registered; kept alive for as long as the device (the kernel pins its
  // memory, and the mediator translates through it).
  GuestMemoryMap memory_;
  std::vector<Disk> disks_;  // registered: the kernel holds its own references too
  WindowClaim window_claim_;  // kept forever if stop() could not see the ring released
  UniqueFd kick_;
  UniqueFd notify_;
  abi::DescriptorHeader header_{};
  std::vector<abi::WindowEntry> windows_;
  DeviceSetupTimes setup_times_;

 private:
  std::atomic<DeviceState> state_{DeviceState::Created};
};

// --- Helpers both devices are built with. ---

DeviceError config_error(std::string message);
DeviceError ring_error(const Error<RingErrc>& e);

// The largest queue depth a device takes: its CQ (twice the depth) and, in mediated mode, its
// private ring's SQ (one slot per guest CQ entry) must fit the kernel's 32768 SQ entries.
inline constexpr unsigned kMaxDeviceQueueDepth = kMaxSqEntries / 2;

// Checks what every device needs from its caller but the window: 1..64 disks, a queue depth that
// is a power of two up to kMaxDeviceQueueDepth, and a CPU to pin to (if any) that this process
// may run on. window_bytes() and create() both apply it.
Result<void, DeviceError> check_device_config(std::size_t disk_count, unsigned queue_depth, std::optional<unsigned> cpu);
// check_device_config, and a page-aligned window.
Result<void, DeviceError> check_device_basics(const std::vector<Disk>& disks, GuestAddress device_window,
                                              unsigned queue_depth, std::optional<unsigned> cpu);

// The caller's restriction set, or else the built-in policy `default_policy`, compiled.
Result<RestrictionSet, DeviceError> device_restrictions(const std::optional<RestrictionSet>& chosen,
                                                        std::string_view default_policy);

// How many fixed buffers (= buffer windows in the descriptor) the map's plan makes; refused when
// it has none (no writable region) or more than the descriptor can list.
Result<std::size_t, DeviceError> count_buffer_windows(const GuestMemory& memory);

// Creates a ring with `options`, registers the disks, the map's fixed-buffer plan and `eventfd`,
// restricts it with `restrictions`, enables it (self-check included) and drains the eventfd the
// self-check signalled. Records each step's time in `times`. `release_probe`, if not -1, is
// registered as one more fixed file after the disks (see ReleaseProbe). The ring is created and
// set up with only CAP_IPC_LOCK in the calling thread's effective set
// (host/thread_capabilities.h): the kernel keeps the creator's credentials for an SQPOLL thread,
// which issues the guest's requests with them.
Result<Ring, DeviceError> build_device_ring(const RingOptions& options, const std::vector<Disk>& disks,
                                            const GuestMemory& memory, int eventfd, const RestrictionSet& restrictions,
                                            DeviceSetupTimes& times, int release_probe = -1);

Result<UniqueFd, DeviceError> make_eventfd(const char* what);

// A device window: claimed on the map (no other device may use any of it while the claim
// lives) and its host memory, fresh zeroed pages.
struct ClaimedWindow {
  WindowClaim claim;
  std::byte* host = nullptr;
};
// Claims [window, window + bytes), which must lie inside one writable region and overlap no other
// device's window on the map.
Result<ClaimedWindow, DeviceError> claim_device_window(const GuestMemory& memory, GuestAddress window, std::uint64_t bytes);
// Bytes the descriptor takes at the start of the device window (page-rounded).
std::uint64_t descriptor_window_bytes(std::size_t disks, std::size_t windows);

// One window per fixed-buffer piece of the map's plan, in guest-physical order; with the
// host-address bias in passthrough, without it in mediated mode.
std::vector<abi::WindowEntry> buffer_windows(const GuestMemory& memory, abi::Mode mode);
std::vector<abi::DiskEntry> disk_entries(const std::vector<Disk>& disks);
// Encodes the descriptor at `host` (the start of the device window).
Result<void, DeviceError> write_descriptor(std::byte* host, std::uint64_t bytes, const abi::DescriptorHeader& header,
                                           const std::vector<Disk>& disks, const std::vector<abi::WindowEntry>& windows);

}  // namespace rf
