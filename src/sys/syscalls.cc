#include "sys/syscalls.h"

#include <linux/capability.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

namespace rf::sys {

namespace {
int kernel_convention(long ret) { return ret < 0 ? -errno : static_cast<int>(ret); }
}  // namespace

int io_uring_setup(unsigned entries, io_uring_params* params) {
  // SAFETY: params points to a caller-owned io_uring_params the kernel reads and writes.
  return kernel_convention(::syscall(__NR_io_uring_setup, entries, params));
}

int io_uring_enter(int ring_fd, unsigned to_submit, unsigned min_complete, unsigned flags, const void* arg,
                   std::size_t arg_size) {
  // SAFETY: arg is null or points to arg_size readable bytes (a sigset or getevents arg).
  return kernel_convention(::syscall(__NR_io_uring_enter, ring_fd, to_submit, min_complete, flags, arg, arg_size));
}

int io_uring_register(int ring_fd, unsigned opcode, const void* arg, unsigned nr_args) {
  // SAFETY: arg points to whatever `opcode` expects, sized by nr_args; callers build it.
  return kernel_convention(::syscall(__NR_io_uring_register, ring_fd, opcode, arg, nr_args));
}

int has_cap_ipc_lock() {
  __user_cap_header_struct header{};
  header.version = _LINUX_CAPABILITY_VERSION_3;
  header.pid = 0;
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3]{};
  // SAFETY: version 3 expects an array of _LINUX_CAPABILITY_U32S_3 data structs.
  const int rc = kernel_convention(::syscall(SYS_capget, &header, data));
  if (rc < 0) return rc;
  return (data[CAP_TO_INDEX(CAP_IPC_LOCK)].effective & CAP_TO_MASK(CAP_IPC_LOCK)) != 0 ? 1 : 0;
}

long long block_device_size(int fd) {
  std::uint64_t bytes = 0;
  // SAFETY: BLKGETSIZE64 writes one u64 through the pointer.
  if (::ioctl(fd, BLKGETSIZE64, &bytes) != 0) return -errno;
  return static_cast<long long>(bytes);
}

}  // namespace rf::sys
