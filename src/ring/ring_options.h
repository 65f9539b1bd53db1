// RingOptions: how a ring is created. Every ring ringfence creates starts disabled
// (IORING_SETUP_R_DISABLED) so that its restrictions are in place before anyone submits.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "ring/ring_error.h"

namespace rf {

inline constexpr unsigned kMaxSqEntries = 32768;  // IORING_MAX_ENTRIES
inline constexpr unsigned kMaxCqEntries = 2 * kMaxSqEntries;

struct SqPollOptions {
  std::optional<unsigned> cpu;  // IORING_SETUP_SQ_AFF: pin the SQPOLL thread
  std::chrono::milliseconds idle{1000};  // sq_thread_idle: how long it spins before sleeping
  // IORING_REGISTER_IOWQ_AFF: the SQPOLL thread's io-wq workers (which do every request a target
  // cannot take without blocking: all of zram's) run on its CPU, where the SQPOLL thread gives
  // way to them at its next cond_resched, and not beside a thread that spins in user space, which
  // keeps them waiting until the scheduler preempts it (docs/benchmarks.md). Needs `cpu`.
  bool workers_on_sqpoll_cpu = false;
};

// Caller-provided memory for IORING_SETUP_NO_MMAP (Linux 6.5+): `rings` receives the SQ/CQ
// headers, the CQEs and the SQ index array; `sqes` the SQE array. Both page-aligned, at least
// as large as ring_memory_layout() says, and not overlapping. Borrowed: the memory must stay
// mapped until the ring is destroyed (the kernel pins it). Creating the ring gives both areas
// fresh zero pages first (ring/fresh_ring_memory.h): whatever they held is gone.
struct CallerRingMemory {
  std::span<std::byte> rings;
  std::span<std::byte> sqes;
};

struct RingOptions {
  unsigned sq_entries = 64;
  std::optional<unsigned> cq_entries;  // IORING_SETUP_CQSIZE; default 2 * sq_entries
  std::optional<SqPollOptions> sqpoll;  // IORING_SETUP_SQPOLL
  bool iopoll = false;  // IORING_SETUP_IOPOLL: only for files on devices with poll queues
  bool no_sqarray = false;  // IORING_SETUP_NO_SQARRAY (6.6+)
  // IORING_SETUP_SUBMIT_ALL (5.18+): an SQE that fails at submission does not stop the batch,
  // so io_uring_enter consumes exactly what it was asked to (the caller can count it).
  bool submit_all = false;
  std::optional<CallerRingMemory> caller_memory;  // IORING_SETUP_NO_MMAP
  // IORING_SETUP_ATTACH_WQ: share the async backend (and, with SQPOLL, the SQPOLL thread) of
  // another ring; the descriptor is borrowed.
  std::optional<int> attach_wq_fd;
};

// How much memory a ring with these options needs, for IORING_SETUP_NO_MMAP.
struct RingMemoryLayout {
  unsigned sq_entries = 0;  // after the kernel's rounding to a power of two
  unsigned cq_entries = 0;
  std::size_t rings_bytes = 0;  // page-rounded
  std::size_t sqes_bytes = 0;   // page-rounded
};

// Asks the running kernel (by creating and closing a throwaway disabled ring with the same
// entries and layout flags), so the answer is exact for this kernel's struct layout.
Result<RingMemoryLayout, RingError> ring_memory_layout(const RingOptions& options);

}  // namespace rf
