#include "host/block_device.h"

#include <cstring>

#include <fmt/format.h>

#include "sys/syscalls.h"

namespace rf {

Result<BlockDeviceGeometry, SystemError> block_device_geometry(int fd) {
  const long long bytes = sys::block_device_size(fd);
  if (bytes < 0) {
    const int err = static_cast<int>(-bytes);
    return unexpected(SystemError{err, fmt::format("BLKGETSIZE64: {}", std::strerror(err))});
  }
  const int block = sys::block_device_logical_block_size(fd);
  if (block < 0) return unexpected(SystemError{-block, fmt::format("BLKSSZGET: {}", std::strerror(-block))});
  return BlockDeviceGeometry{static_cast<std::uint64_t>(bytes), static_cast<std::uint32_t>(block)};
}

}  // namespace rf
