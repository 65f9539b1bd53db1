// Attaching an image file to a loop device, so that the block layer bounds every offset.
#pragma once

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

}  // namespace rf
