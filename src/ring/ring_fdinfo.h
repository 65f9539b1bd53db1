// The kernel's own counters for an io_uring, from /proc/self/fdinfo of its descriptor.
//
// For a ring whose SQ/CQ live in memory someone else can write (a passthrough guest's RAM), the
// ring words are not evidence: only the kernel's private copies are. fdinfo prints them:
// CachedSqHead (SQEs the kernel has taken), CachedCqTail (CQEs it has written to the CQ) and the
// overflow list (CQEs waiting for CQ room).
//
// Cost. The kernel builds the whole text on every read, while it holds the ring's lock: one line
// per CQE between the CQ head and tail (at most cq_entries), per registered file and buffer,
// per pending poll request and per overflowed CQE. Only the last two are unbounded in general,
// and only in a ring nobody bounds (SQPOLL passthrough); the reader below keeps the VMM's side
// bounded anyway: it reads at most `max_bytes` and says when the text was longer.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "util/result.h"

namespace rf {

struct KernelRingCounters {
  std::uint32_t sq_head = 0;   // CachedSqHead: SQEs the kernel has taken
  std::uint32_t cq_tail = 0;   // CachedCqTail: CQEs it has written to the CQ
  std::uint64_t overflow = 0;  // CQEs waiting in its overflow list (a lower bound when !complete)
  bool complete = true;        // the whole text was read, so `overflow` is exact
  int sq_thread = -1;          // SqThread: the SQPOLL thread's id, -1 without one
};

// Parses the fdinfo text of an io_uring descriptor; nullopt if a counter is missing.
// `complete` says whether `text` is all of it (the overflow list may be cut short otherwise).
std::optional<KernelRingCounters> parse_ring_fdinfo(std::string_view text, bool complete = true);

// How much fdinfo text a ring prints at most when nothing in it is unbounded: the fixed lines,
// one per CQ entry, per registered file and buffer, and `bounded_entries` more for pending poll
// requests and overflowed CQEs (a ring whose in-flight requests and overflow the VMM bounds).
std::size_t ring_fdinfo_bytes(std::uint32_t sq_entries, std::uint32_t cq_entries, std::size_t files,
                              std::size_t buffers, std::uint64_t bounded_entries);

inline constexpr std::size_t kDefaultFdinfoBytes = 1u << 20;

// Reads them once, at most `max_bytes` of text. Fails (with the reason) while another task holds
// the ring's lock (an SQPOLL thread submitting, or io_uring_enter on another thread), when fdinfo
// prints no counters at all: callers retry.
Result<KernelRingCounters, std::string> read_ring_fdinfo(int ring_fd, std::size_t max_bytes = kDefaultFdinfoBytes);
// Retries every millisecond until the counters can be read, for at most `timeout`.
Result<KernelRingCounters, std::string> read_ring_fdinfo_within(int ring_fd, std::chrono::milliseconds timeout,
                                                                std::size_t max_bytes = kDefaultFdinfoBytes);

}  // namespace rf
