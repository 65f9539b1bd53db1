// RingLedger: what the VMM knows about a passthrough ring without believing guest memory.
//
// A passthrough ring's words (SQ head and tail, CQ head and tail, flags, dropped) live in guest
// RAM, where the guest can write any of them; none is evidence of anything. The ledger counts
// only from the kernel's private copies, which /proc/self/fdinfo prints (ring/ring_fdinfo.h):
//   taken     SQEs the kernel has consumed since the device was created (CachedSqHead)
//   posted    CQEs it has written into the CQ since then (CachedCqTail)
//   overflow  CQEs waiting in its overflow list for CQ room
// With IORING_SETUP_NO_SQARRAY (which passthrough rings use) the kernel drops no SQE, and every
// SQE the allowed opcodes take posts at most one CQE, so:
//   outstanding = taken - posted             what the kernel holds for this ring: requests in
//                                            flight and overflowed CQEs (kernel memory)
//   in flight   = taken - posted - overflow  requests that may still touch guest RAM or a disk
// The kernel's counters are 32 bits; the ledger widens them by adding each read's difference to
// the last, which is exact as long as fewer than 2^32 SQEs pass between two reads (the bound
// and the watchdog see to far fewer).
//
// Reads and close() are serialized: a reader never reads the fdinfo of a descriptor number the
// kernel has given to another file.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>

#include "ring/ring.h"
#include "ring/ring_enter.h"
#include "ring/ring_fdinfo.h"
#include "util/result.h"

namespace rf {

struct RingSnapshot {
  std::uint64_t taken = 0;
  std::uint64_t posted = 0;
  std::uint64_t overflow = 0;     // a lower bound when !overflow_exact
  bool overflow_exact = true;     // the fdinfo text was read to its end
  std::uint32_t sq_head = 0;      // the kernel's SQ head itself (CachedSqHead), to compare with a tail
  std::uint64_t outstanding() const { return taken > posted ? taken - posted : 0; }
  std::uint64_t in_flight() const { return outstanding() > overflow ? outstanding() - overflow : 0; }
};

class RingLedger {
 public:
  // `ring` outlives the ledger. `fdinfo_bytes` bounds every read (ring_fdinfo_bytes). Takes the
  // baseline: the kernel's counters now, once create() is done with the ring (its self-check).
  static Result<RingLedger, std::string> create(Ring& ring, std::size_t fdinfo_bytes);
  RingLedger(RingLedger&& other) noexcept;
  RingLedger& operator=(RingLedger&&) = delete;

  // One read of the kernel's counters. Fails while another task holds the ring's lock (the
  // device thread inside io_uring_enter, an SQPOLL thread submitting) and once the ring is closed.
  Result<RingSnapshot, std::string> read();
  // Retries for at most `budget`: back to back for the first 200 µs, then every 100 µs.
  Result<RingSnapshot, std::string> read_within(std::chrono::microseconds budget);
  // The last snapshot any read took, and when (for observers that must not read fdinfo, nor
  // wait for a read under way).
  RingSnapshot last() const;
  std::chrono::steady_clock::time_point last_at() const;

  // The kernel's raw counters (not widened), for audits and tests, retried for up to `within`
  // while another task holds the ring's lock; fails once the ring is closed.
  Result<KernelRingCounters, std::string> read_raw(std::size_t max_bytes, std::chrono::milliseconds within) const;
  // io_uring_enter(0, 0, flags) on the ring while it is open (-EBADF once closed): for threads
  // other than the one that drives the ring, which may close it meanwhile.
  int enter_if_open(EnterFlags flags) const;
  // Runs fn(fd) with the ring kept open meanwhile; false (fn not run) once it is closed.
  template <typename Fn>
  bool with_open_fd(Fn&& fn) const {
    std::lock_guard lock(mutex_);
    if (!open_.load(std::memory_order_relaxed)) return false;
    fn(fd_);
    return true;
  }

  // Closes the kernel ring (Ring::close), once; later reads fail.
  void close();
  bool is_open() const;
  // The ring's descriptor for io_uring_enter, for the one thread that drives the ring (it must
  // not race close(): the device closes the ring only after that thread has ended, or from it).
  // Every other thread goes through read(), read_raw(), enter_if_open() or with_open_fd().
  int fd() const { return fd_; }

 private:
  RingLedger(Ring& ring, int fd, std::size_t fdinfo_bytes) : ring_(&ring), fd_(fd), fdinfo_bytes_(fdinfo_bytes) {}
  Result<RingSnapshot, std::string> read_locked();

  Ring* ring_;
  int fd_;
  std::size_t fdinfo_bytes_;
  mutable std::mutex mutex_;  // guards everything below, and the ring's descriptor against close()
  std::atomic<bool> open_{true};  // written under mutex_; read without it by is_open()
  KernelRingCounters previous_{};  // the kernel's 32-bit counters at the last read
  RingSnapshot total_{};           // widened to 64 bits since the baseline
  // A copy of total_ and its time, under a lock of its own that no read holds for long.
  mutable std::mutex last_mutex_;
  RingSnapshot last_{};
  std::chrono::steady_clock::time_point at_{};
};

}  // namespace rf
