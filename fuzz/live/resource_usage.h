// ResourceUsage: what the VMM process holds, from /proc/self: open descriptors, threads (the
// kernel's SQPOLL and io-wq threads count: they are the VMM's tasks), resident and pinned memory.
// `ringfence fuzz` takes one before the first episode and checks after each that nothing grows.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace rf::fuzz {

struct ResourceUsage {
  std::uint64_t fds = 0;
  std::uint64_t threads = 0;
  std::uint64_t rss_kib = 0;
  std::uint64_t pinned_kib = 0;  // VmPin: pages the kernel pinned (registered buffers)

  static ResourceUsage now();
};

// What grew from `baseline` to `now` past the allowance (fds, threads and pinned memory must be
// back exactly; resident memory may grow by `rss_slack_kib`), or nullopt.
std::optional<std::string> resource_growth(const ResourceUsage& baseline, const ResourceUsage& now,
                                           std::uint64_t rss_slack_kib);

}  // namespace rf::fuzz
