// The calling thread's Linux capabilities, through capget/capset. Capabilities are per thread:
// dropping one here changes nothing for the process's other threads.
//
// Why ringfence cares: the kernel checks some SQE fields against the credentials of whoever
// issues the request. A restricted ring's requests are issued by its SQPOLL thread (with the
// credentials of the thread that created the ring) or by the thread that calls io_uring_enter,
// and the io-wq workers they start inherit those credentials. A VMM running as root would
// otherwise let a guest ask for real-time I/O priority (ioprio class RT needs CAP_SYS_ADMIN or
// CAP_SYS_NICE). So rings are created, and guest requests issued, from credentials that keep
// only what a ring needs: CAP_IPC_LOCK, so that pinning guest RAM is not charged to
// RLIMIT_MEMLOCK.
#pragma once

#include <cstdint>
#include <string>

#include "util/result.h"

namespace rf {

// A capability set as the kernel's 64-bit masks (bit n = capability n).
struct ThreadCapabilities {
  std::uint64_t effective = 0;
  std::uint64_t permitted = 0;
  std::uint64_t inheritable = 0;
};

inline constexpr std::uint64_t capability_bit(int cap) { return std::uint64_t{1} << cap; }

// The sets of thread `tid` (0: the calling thread).
Result<ThreadCapabilities, SystemError> thread_capabilities(int tid = 0);
// Sets the calling thread's sets (the kernel refuses to add to permitted).
Result<void, SystemError> set_thread_capabilities(const ThreadCapabilities& caps);

// Lowers the calling thread's effective set to `keep` (intersected with what it has) for the
// guard's lifetime, and restores it afterwards. For ring creation on a caller's thread: the
// kernel snapshots the creator's credentials for the SQPOLL thread. Permitted stays as it was,
// which is what lets the destructor raise the effective set again.
class ScopedEffectiveCapabilities {
 public:
  static Result<ScopedEffectiveCapabilities, SystemError> lower_to(std::uint64_t keep);
  ScopedEffectiveCapabilities(ScopedEffectiveCapabilities&& other) noexcept;
  ScopedEffectiveCapabilities& operator=(ScopedEffectiveCapabilities&&) = delete;
  ~ScopedEffectiveCapabilities();

 private:
  explicit ScopedEffectiveCapabilities(const ThreadCapabilities& saved) : saved_(saved) {}
  ThreadCapabilities saved_;
  bool active_ = true;
};

// Drops every capability but `keep` from the calling thread's effective, permitted and
// inheritable sets, for good: for threads that issue guest requests (they never need more).
Result<void, SystemError> drop_thread_capabilities_except(std::uint64_t keep);

// What a ring needs and no more: CAP_IPC_LOCK (fixed buffers and NO_MMAP ring memory are then
// not charged to RLIMIT_MEMLOCK).
std::uint64_t ring_capabilities();

}  // namespace rf
