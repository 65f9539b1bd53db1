// A memory cgroup of its own for the test process, to measure (and cap) what a hostile guest
// makes the kernel allocate on the VMM's behalf: io_uring requests and overflowed CQEs are kernel
// memory charged to the cgroup of the thread that allocates them (the device thread, the
// SQPOLL thread, io-wq workers: all threads of this process).
//
// Works with cgroup v2 (the unified hierarchy with the memory controller) and v1 (the memory
// hierarchy). The group is a child of the process's own memory cgroup; entering moves the whole
// process (every thread), leaving moves it back and removes the group. Charges made before
// entering stay where they were, so usage() counts what was allocated inside.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "support/kernel_caps.h"
#include "util/result.h"

namespace rf::test {

// Whether the machine lets this process make a child memory cgroup (root and a writable
// memory controller).
const Feature& memory_cgroup_feature();

class MemoryCgroup {
 public:
  // Creates the group with `limit_bytes` (0: no limit) and moves this process into it.
  static Result<MemoryCgroup, std::string> enter(std::uint64_t limit_bytes);
  MemoryCgroup(MemoryCgroup&& other) noexcept;
  MemoryCgroup& operator=(MemoryCgroup&&) = delete;
  ~MemoryCgroup();  // moves the process back and removes the group

  // Bytes charged to the group now, and the most it held (memory.peak / max_usage_in_bytes):
  // user memory too (a sanitizer's shadow and quarantine among it).
  std::uint64_t usage() const;
  std::optional<std::uint64_t> peak() const;
  // Kernel memory charged to the group now: slab objects (io_uring requests, overflowed CQEs),
  // page tables, kernel stacks (v2: memory.stat "kernel"; v1: memory.kmem.usage_in_bytes).
  std::uint64_t kernel_usage() const;
  // The most kernel memory the group held since it was made, where the kernel keeps that
  // (v1: memory.kmem.max_usage_in_bytes); nullopt on v2, whose callers sample kernel_usage().
  std::optional<std::uint64_t> kernel_peak() const;
  // OOM kills inside the group so far.
  std::uint64_t oom_kills() const;
  const std::string& path() const { return path_; }

 private:
  MemoryCgroup(std::string path, std::string parent, bool v2) : path_(std::move(path)), parent_(std::move(parent)), v2_(v2) {}
  std::string path_;
  std::string parent_;
  bool v2_ = true;
};

// MemAvailable from /proc/meminfo, in bytes: what the host as a whole can still hand out.
std::uint64_t host_memory_available();

}  // namespace rf::test
