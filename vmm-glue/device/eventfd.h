// The three things the device threads do with eventfds (doorbells, wake-ups, notifications).
#pragma once

namespace rf {

// Adds one to the count: wakes whoever polls `fd`. A full counter (2^64 - 2) loses the signal,
// which a poller that re-checks its state after every wake-up does not miss.
void signal_eventfd(int fd);
// Reads the count of an eventfd that poll() said is readable (so the read returns at once).
void consume_eventfd(int fd);
// Reads whatever count an eventfd holds, without blocking.
void drain_eventfd(int fd);

}  // namespace rf
