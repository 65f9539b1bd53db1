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

namespace {

// Version 3: two 32-bit words per set.
struct RawCaps {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3]{};
};

std::uint64_t join(std::uint32_t low, std::uint32_t high) { return std::uint64_t{high} << 32 | low; }

}  // namespace

int capget(int tid, RawCapabilitySets& out) {
  RawCaps raw;
  raw.header.pid = tid;
  // SAFETY: version 3 expects an array of _LINUX_CAPABILITY_U32S_3 data structs; pid 0 is the
  // calling thread.
  const int rc = kernel_convention(::syscall(SYS_capget, &raw.header, raw.data));
  if (rc < 0) return rc;
  out = RawCapabilitySets{join(raw.data[0].effective, raw.data[1].effective), join(raw.data[0].permitted, raw.data[1].permitted),
                          join(raw.data[0].inheritable, raw.data[1].inheritable)};
  return 0;
}

int capset(const RawCapabilitySets& sets) {
  RawCaps raw;
  raw.data[0] = {static_cast<std::uint32_t>(sets.effective), static_cast<std::uint32_t>(sets.permitted),
                 static_cast<std::uint32_t>(sets.inheritable)};
  raw.data[1] = {static_cast<std::uint32_t>(sets.effective >> 32), static_cast<std::uint32_t>(sets.permitted >> 32),
                 static_cast<std::uint32_t>(sets.inheritable >> 32)};
  // SAFETY: as in capget; the raw syscall changes only the calling thread (glibc's capset
  // wrapper is the same system call, also per thread).
  return kernel_convention(::syscall(SYS_capset, &raw.header, raw.data));
}

int block_device_logical_block_size(int fd) {
  int block = 0;
  // SAFETY: BLKSSZGET writes one int through the pointer.
  if (::ioctl(fd, BLKSSZGET, &block) != 0) return -errno;
  return block;
}

long long block_device_size(int fd) {
  std::uint64_t bytes = 0;
  // SAFETY: BLKGETSIZE64 writes one u64 through the pointer.
  if (::ioctl(fd, BLKGETSIZE64, &bytes) != 0) return -errno;
  return static_cast<long long>(bytes);
}

}  // namespace rf::sys
