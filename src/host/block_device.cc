#include "host/block_device.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cstring>
#include <fstream>

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

Result<std::uint64_t, SystemError> block_device_write_zeroes_max_bytes(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return unexpected(SystemError{errno, fmt::format("fstat: {}", std::strerror(errno))});
  if (!S_ISBLK(st.st_mode)) return unexpected(SystemError{ENOTBLK, "not a block device"});
  const std::string device = fmt::format("/sys/dev/block/{}:{}", major(st.st_rdev), minor(st.st_rdev));
  // A whole disk has queue/ in its own directory; a partition's is its parent's.
  for (const char* queue : {"/queue/write_zeroes_max_bytes", "/../queue/write_zeroes_max_bytes"}) {
    std::ifstream in(device + queue);
    std::uint64_t bytes = 0;
    if (in >> bytes) return bytes;
  }
  return unexpected(SystemError{ENOENT, fmt::format("no queue/write_zeroes_max_bytes under {}", device)});
}

}  // namespace rf
