// yield_between_looks: what a host thread that polls (a passthrough device thread, a mediator)
// does between two looks at guest memory. Not a PAUSE spin: the thread it waits for may need this
// very CPU. On zram, and on any target without non-blocking I/O, io_uring hands every request to
// an io-wq worker thread, which the scheduler often wakes on the polling thread's CPU; a spinning
// poller keeps it off until the next preemption, tens of microseconds per I/O on a 2-CPU host.
// sched_yield runs whoever waits for the CPU and returns at once when nobody does
// (docs/benchmarks.md has the measurements).
#pragma once

#include <sched.h>

namespace rf {

inline void yield_between_looks() { ::sched_yield(); }

}  // namespace rf
