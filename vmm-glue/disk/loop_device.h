// Attaching an image file to a loop device, so that the block layer bounds every offset.
#pragma once

#include <chrono>
#include <string>

#include "disk/disk.h"

namespace rf {

struct LoopAttachment {
  UniqueFd device;  // the open loop device; when the last reference closes, it detaches
  std::string path;  // /dev/loopN
  bool direct_io = false;  // the loop device does direct I/O to the image
};

// Binds `image_fd` to a free loop device with LO_FLAGS_AUTOCLEAR (nothing is left attached
// once the device is closed, even if the VMM dies), read-only if asked, with direct I/O to the
// image when the image's file system supports it. Opens the device with `open_flags`.
Result<LoopAttachment, DiskError> attach_loop_device(int image_fd, bool read_only, bool direct_io, int open_flags);

// Whether /dev/loopN (`device_path`) still has a backing file.
bool loop_device_attached(const std::string& device_path);
// Waits up to `timeout` for the loop device to detach. AUTOCLEAR detaches it at the last close,
// and an io_uring that registered it drops its reference asynchronously after the ring fd is
// closed, so the detach lags the VMM's teardown by a little. Returns whether it detached.
bool wait_for_loop_detach(const std::string& device_path, std::chrono::milliseconds timeout);

}  // namespace rf
