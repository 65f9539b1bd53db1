// Thin shims over the raw system calls ringfence needs. Every shim returns the kernel's
// convention, a non-negative result or -errno, whatever libc's wrapper does (libc returns -1
// and sets errno): this file is where that conversion happens, once.
#pragma once

#include <cstddef>
#include <cstdint>

#include "sys/uapi_compat.h"

namespace rf::sys {

int io_uring_setup(unsigned entries, io_uring_params* params);
int io_uring_enter(int ring_fd, unsigned to_submit, unsigned min_complete, unsigned flags, const void* arg,
                   std::size_t arg_size);

// The single funnel for every io_uring_register(2) opcode.
int io_uring_register(int ring_fd, unsigned opcode, const void* arg, unsigned nr_args);

// Whether the calling thread has CAP_IPC_LOCK in its effective set (io_uring does not charge
// fixed buffers or ring memory to RLIMIT_MEMLOCK when it does): 1, 0, or -errno.
int has_cap_ipc_lock();

// Size in bytes of the block device open on `fd` (BLKGETSIZE64), or -errno.
long long block_device_size(int fd);
// Logical block size of the block device open on `fd` (BLKSSZGET), or -errno.
int block_device_logical_block_size(int fd);

// A thread's capability sets as the kernel's 64-bit masks (bit n = capability n).
struct RawCapabilitySets {
  std::uint64_t effective = 0;
  std::uint64_t permitted = 0;
  std::uint64_t inheritable = 0;
};
// capget(2) of thread `tid` (0: the calling thread): 0 or -errno.
int capget(int tid, RawCapabilitySets& out);
// capset(2) of the calling thread (the raw system call, which changes only this thread): 0 or -errno.
int capset(const RawCapabilitySets& sets);

}  // namespace rf::sys
