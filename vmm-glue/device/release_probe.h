// ReleaseProbe: tells when the kernel has freed a closed ring, so that stop() returns only once
// no request of the device can still read or write guest RAM.
//
// The kernel frees a ring asynchronously, and only after its last request has ended; it then
// unregisters the fixed buffers (unpinning guest RAM) and, after them, drops the fixed files.
// The probe is one more fixed file registered after the disks: an empty, read-only memfd on
// whose open file description the probe holds an OFD read lock. The kernel's reference is the
// last one (the probe closes its own descriptor once the ring holds it), so when the kernel drops
// it, the lock goes with it, which a second descriptor of the same memfd sees (F_OFD_GETLK).
//
// A passthrough guest can name it (its fixed-file index is the disk count; the descriptor does
// not list it): a READ_FIXED returns 0 bytes, a WRITE_FIXED gets -EBADF, FSYNC returns at once.
// Nothing waits on it, so it holds none of the guest's requests in flight.
#pragma once

#include <chrono>
#include <string>

#include "device/device_error.h"
#include "util/result.h"
#include "util/unique_fd.h"

namespace rf {


class ReleaseProbe {
 public:
  static Result<ReleaseProbe, DeviceError> create();
  // The descriptor to register; call forget_registered() once it is registered.
  int registered_fd() const { return locked_.get(); }
  void forget_registered() { locked_.reset(); }
  // After the ring is closed: true once the kernel has dropped the probe, within `timeout` (0:
  // whether it has, now).
  bool wait_released(std::chrono::milliseconds timeout) const;

 private:
  ReleaseProbe() = default;
  UniqueFd locked_;   // the open file description that holds the lock (registered, then ours no more)
  UniqueFd checker_;  // another description of the same memfd, to ask whether the lock is still held
};

}  // namespace rf
