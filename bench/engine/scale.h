// The scale section of `ringfence bench`: what it costs to set up a sandboxed device, how long
// pinning guest RAM takes per GiB, and how aggregate kIOPS grows with the number of guests, each
// on its own ring, with and without one shared SQPOLL thread.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "abi/ring_descriptor.h"
#include "device/guest_device.h"
#include "engine/guest_job.h"
#include "util/result.h"

namespace rf::bench {

// Creates and destroys `count` devices of `mode` over `ram_bytes` of fresh memfd guest RAM and
// the target (opened as the guest rows open it), and returns each one's set-up times. Disk
// opening and guest RAM allocation are outside the times, as in a VMM that has both already.
Result<std::vector<DeviceSetupTimes>, std::string> measure_device_setup(abi::Mode mode, const std::string& target,
                                                                        unsigned count, std::uint64_t ram_bytes,
                                                                        std::optional<unsigned> sqpoll_cpu);

// The median of one field of `samples` (which must not be empty).
std::chrono::nanoseconds median_of(const std::vector<DeviceSetupTimes>& samples,
                                   std::chrono::nanoseconds (*field)(const DeviceSetupTimes&));

struct RegistrationTime {
  std::uint64_t ram_bytes = 0;
  bool prefaulted = false;
  std::chrono::nanoseconds prefault{0};  // touching every page first, when prefaulted
  std::chrono::nanoseconds register_buffers{0};
  double ms_per_gib() const;
};

// Registers `ram_bytes` of memfd guest RAM as a passthrough device's fixed buffers, untouched
// (the kernel faults every page in as it pins it) or after the VMM touched every page.
Result<RegistrationTime, std::string> measure_registration(const std::string& target, std::uint64_t ram_bytes,
                                                           bool prefault);

}  // namespace rf::bench
