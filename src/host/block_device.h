// The geometry of an open block device: what a disk tells its guest (size, logical block size).
#pragma once

#include <cstdint>

#include "util/result.h"

namespace rf {

struct BlockDeviceGeometry {
  std::uint64_t size_bytes = 0;
  std::uint32_t logical_block_size = 0;
};

// BLKGETSIZE64 and BLKSSZGET on `fd`; the error names which one failed.
Result<BlockDeviceGeometry, SystemError> block_device_geometry(int fd);

}  // namespace rf
