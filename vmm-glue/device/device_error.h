// DeviceError: what a device's creation and lifecycle calls fail with. A failed system call
// always carries its errno; a refusal of the caller's configuration carries none.
#pragma once

#include "util/result.h"

namespace rf {

enum class DeviceErrc {
  InvalidConfig,  // no disks, too many, a window outside guest RAM or overlapping another, a bad queue depth or CPU
  Ring,           // creating, registering, restricting or enabling the kernel ring failed
  Eventfd,        // creating one of the device's eventfds failed
  Thread,         // starting the device's thread failed (creating, pinning it or dropping its capabilities)
  System,         // another system call for the device's own resources failed (the release probe)
  WrongState,     // a lifecycle call the device's state does not allow (start twice, resume while running)
  Timeout,        // quiesce: requests were still in flight when the time was up
  Broken,         // the guest broke the ring protocol or a resource bound; the device does nothing more until stopped
};
using DeviceError = Error<DeviceErrc>;

}  // namespace rf
