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

// The most bytes one write-zeroes command of the block device behind `fd` may cover
// (queue/write_zeroes_max_bytes in sysfs; a partition's is its disk's): 0 when the device
// cannot zero without being written zero pages. fallocate(FALLOC_FL_PUNCH_HOLE) on a block
// device needs it to be non-zero; FALLOC_FL_ZERO_RANGE falls back to writing zeros.
Result<std::uint64_t, SystemError> block_device_write_zeroes_max_bytes(int fd);

}  // namespace rf
