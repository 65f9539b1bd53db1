// Building a restricted ring. The order is in the types:
//
//   DisabledRing::create(options)      io_uring_setup with IORING_SETUP_R_DISABLED
//     .register_files(...)             fixed files (the disks)
//     .register_buffers(...)           fixed buffers (guest RAM), split at 1 GiB
//     .register_eventfd(...)           optional completion notification
//   std::move(disabled).restrict(set)  IORING_REGISTER_RESTRICTIONS   -> RestrictedRing
//   std::move(restricted).enable()     IORING_REGISTER_ENABLE_RINGS + self-check -> Ring
//
// A DisabledRing has no way to submit; restrict() consumes it, so restrictions cannot be
// registered twice; and only enable() makes a Ring, after the self-check passed.
#pragma once

#include <span>

#include "ring/registered_buffers.h"
#include "ring/restriction.h"
#include "ring/ring.h"
#include "ring/ring_core.h"
#include "ring/ring_options.h"

namespace rf {

class RestrictedRing;

class DisabledRing {
 public:
  static Result<DisabledRing, RingError> create(const RingOptions& options);

  DisabledRing(DisabledRing&&) noexcept = default;
  DisabledRing& operator=(DisabledRing&&) noexcept = default;

  Result<void, RingError> register_files(std::span<const int> fds);
  Result<BufferTable, RingError> register_buffers(std::span<const BufferRegion> regions);
  // Registers a plan made beforehand (BufferTable::plan), as buffers 0..n-1.
  Result<void, RingError> register_buffer_table(const BufferTable& table);
  // The kernel takes its own reference to the eventfd; the caller keeps ownership of `eventfd`.
  Result<void, RingError> register_eventfd(int eventfd);

  // Registers the restriction set (encoded for the running kernel's register-restriction
  // model). Consumes the ring: on failure it is closed.
  Result<RestrictedRing, RingError> restrict(const RestrictionSet& set) &&;

  // The descriptor of a disabled ring, borrowed. The kernel refuses submission on it
  // (-EBADFD) until it is enabled; exposed for tests and for IORING_SETUP_ATTACH_WQ.
  int fd() const { return core_.fd(); }
  const RingInfo& info() const { return core_.info(); }

 private:
  explicit DisabledRing(RingCore core) : core_(std::move(core)) {}
  RingCore core_;
};

class RestrictedRing {
 public:
  RestrictedRing(RestrictedRing&&) noexcept = default;
  RestrictedRing& operator=(RestrictedRing&&) noexcept = default;

  // Enables the ring and runs the self-check; a ring that fails it is closed, never returned.
  Result<Ring, RingError> enable() &&;

  int fd() const { return core_.fd(); }

 private:
  friend class DisabledRing;
  RestrictedRing(RingCore core, RestrictionSet set) : core_(std::move(core)), set_(std::move(set)) {}
  RingCore core_;
  RestrictionSet set_;
};

// The kernel's register-restriction model for this machine (cached).
RegisterRestrictionModel running_register_restriction_model();

}  // namespace rf
