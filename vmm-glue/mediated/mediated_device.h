// MediatedDevice: guest rings in guest RAM that no kernel reads, and a mediator thread that
// validates every guest SQE before anything reaches a kernel ring.
//
// The guest sees the same descriptor and ring protocol as in passthrough (mode 2, SQE addresses
// guest-physical, no host-address bias). Behind it: a private kernel ring (no SQPOLL, driven by
// the mediator with io_uring_enter), restricted by the built-in blk-mediated policy, with the
// disks as fixed files and guest RAM as fixed buffers. The guest never learns a host address.
#pragma once

#include <memory>
#include <optional>

#include "device/guest_device.h"
#include "mediated/mediator.h"
#include "ring/ring.h"

namespace rf {

struct MediatedConfig {
  GuestAddress device_window{0x10000};  // page-aligned, inside one writable region
  unsigned queue_depth = 64;  // guest SQ entries, a power of two; the guest CQ has twice as many
  // For the mediator's validator and for the private ring. Default: the built-in blk-mediated
  // policy (write opcodes are refused per disk by the read-only rule, not by the policy).
  std::optional<RestrictionSet> restrictions;
  MediatorConfig mediator;
};

class MediatedDevice final : public GuestDevice {
 public:
  // The device keeps `memory` alive and registers its fixed-buffer plan with the private ring;
  // the mediator translates every guest address through it.
  static Result<std::unique_ptr<MediatedDevice>, DeviceError> create(GuestMemoryMap memory, std::vector<Disk> disks,
                                                                     const MediatedConfig& config);
  // The bytes of guest RAM from config.device_window that create() would take (the descriptor
  // and the guest rings).
  static Result<std::uint64_t, DeviceError> window_bytes(const GuestMemory& memory, std::size_t disk_count,
                                                         const MediatedConfig& config);
  // Stops the device (stop() with no drain time) if the VMM did not.
  ~MediatedDevice() override;

  const SelfCheckReport& self_check() const override { return ring_.self_check(); }
  const RestrictionSet& restrictions() const { return ring_.restrictions(); }
  MediatorCounters counters() const { return mediator_->counters(); }
  std::optional<std::uint64_t> in_flight() const override { return mediator_->counters().in_flight; }
  std::optional<std::uint64_t> completions_posted() const override { return mediator_->counters().posted; }
  // The guest CQ's size: the mediator never has more in flight than the CQ has free slots.
  std::uint64_t in_flight_bound() const override { return header_.ring.cq_entries; }
  BrokenState broken() const override;
  // The mediator marks what it writes: reads' buffers, and the device window with the rings.
  bool set_dirty_log(std::shared_ptr<DirtyLog> log) override {
    return mediator_->set_dirty_log(std::move(log), descriptor_address(), device_window_bytes());
  }
  // The mediator, for a VMM that drives it from its own event loop (Mediator::poll_once) instead
  // of start().
  Mediator& mediator() { return *mediator_; }

 private:
  MediatedDevice(GuestMemoryMap memory, Ring ring, std::vector<Disk> disks)
      : GuestDevice(std::move(memory), std::move(disks)), ring_(std::move(ring)) {}
  Result<void, DeviceError> start_io() override;
  void pause_intake() override { mediator_->pause_intake(); }
  void resume_intake() override { mediator_->resume_intake(); }
  Result<void, DeviceError> wait_drained(std::chrono::milliseconds timeout) override;
  DeviceStopReport stop_io() override;

  Ring ring_;                 // the private kernel ring
  UniqueFd ring_eventfd_;     // its completion eventfd, which the mediator sleeps on
  std::optional<ReleaseProbe> release_;  // one more fixed file of the private ring, for stop()
  std::vector<DiskLimits> limits_;
  std::unique_ptr<Mediator> mediator_;  // last: stopped before anything it uses goes away
};

}  // namespace rf
