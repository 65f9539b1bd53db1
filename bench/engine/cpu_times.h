// User and system CPU time of this process (its SQPOLL threads, io-wq workers and mediator
// threads included: they belong to it) or of another process (a guest), for CPU per I/O.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>

namespace rf::bench {

struct CpuTimes {
  std::chrono::nanoseconds user{0}, system{0};
  std::chrono::nanoseconds total() const { return user + system; }
  CpuTimes operator-(const CpuTimes& earlier) const { return {user - earlier.user, system - earlier.system}; }
  CpuTimes operator+(const CpuTimes& other) const { return {user + other.user, system + other.system}; }
};

CpuTimes own_cpu_times();
// From /proc/PID/stat, in clock ticks (10 ms on most kernels); nothing if the process is gone.
std::optional<CpuTimes> process_cpu_times(pid_t pid);

}  // namespace rf::bench
