// cycle_counter: the CPU's free-running tick counter (TSC on x86-64, the virtual counter on
// AArch64), readable without a system call. The process guest times its I/O with it because
// its seccomp filter allows no clock_gettime (which falls back to a system call whenever the
// kernel's clocksource is not readable from user space). The host converts ticks to time by
// reading the same counter and its own clock at the start and end of a run (on a machine with an
// invariant TSC, every CPU and process sees the same counter). Header-only with no includes.
#pragma once

namespace rf {

#if defined(__x86_64__)
inline constexpr bool kHaveCycleCounter = true;
inline unsigned long long read_cycle_counter() {
  unsigned lo = 0, hi = 0;
  asm volatile("rdtsc" : "=a"(lo), "=d"(hi));
  return (static_cast<unsigned long long>(hi) << 32) | lo;
}
#elif defined(__aarch64__)
inline constexpr bool kHaveCycleCounter = true;
inline unsigned long long read_cycle_counter() {
  unsigned long long v = 0;
  asm volatile("isb; mrs %0, cntvct_el0" : "=r"(v));
  return v;
}
#else
inline constexpr bool kHaveCycleCounter = false;
inline unsigned long long read_cycle_counter() { return 0; }
#endif

}  // namespace rf
