// The kernel's own counters for an io_uring, from /proc/self/fdinfo of its descriptor.
//
// For a ring whose SQ/CQ live in memory someone else can write (a passthrough guest's RAM), the
// ring words are not evidence: only the kernel's private copies are. fdinfo prints them:
// CachedSqHead (SQEs the kernel has taken), CachedCqTail (CQEs it has written to the CQ) and the
// overflow list (CQEs waiting for CQ room).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "util/result.h"

namespace rf {

struct KernelRingCounters {
  std::uint32_t sq_head = 0;   // CachedSqHead: SQEs the kernel has taken
  std::uint32_t cq_tail = 0;   // CachedCqTail: CQEs it has written to the CQ
  std::uint64_t overflow = 0;  // CQEs waiting in its overflow list
  int sq_thread = -1;          // SqThread: the SQPOLL thread's id, -1 without one
};

// Parses the fdinfo text of an io_uring descriptor; nullopt if a counter is missing.
std::optional<KernelRingCounters> parse_ring_fdinfo(std::string_view text);
// Reads them once. Fails (with the reason) while an SQPOLL thread holds the ring's lock, when
// fdinfo prints no counters at all: callers retry.
Result<KernelRingCounters, std::string> read_ring_fdinfo(int ring_fd);
// Retries every millisecond until the counters can be read, for at most `timeout`.
Result<KernelRingCounters, std::string> read_ring_fdinfo_within(int ring_fd, std::chrono::milliseconds timeout);

}  // namespace rf
