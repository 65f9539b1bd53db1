// `ringfence fuzz --mode virtio`: a hostile virtio guest against a live virtio-blk queue of the
// vhost-user back-end (BlkQueue: its own thread under its seccomp filter, its private restricted
// ring, a real disk through a loop device), episode after episode, each a fresh queue on the same
// guest memory, with the VMM's invariants checked after every episode.
//
// The guest (this process's fuzz thread, writing guest memory as a guest would) acts out a
// program drawn from (seed, episode): descriptors with addresses aimed at guest RAM, the
// read-only canary region, the hole, the end of RAM and 2^64, any lengths, flags and `next`
// (loops, indirect tables, nesting); request headers of every type with sectors in and past the
// disk; well-formed requests that really read and write; heads published normally, many times
// over, past the queue size or backwards; kicks; scribbles on the used ring and the suppression
// words. Invariants:
//   one-used-per-request  every request the queue took got exactly one used entry (a broken
//                         queue stops taking; what it took still ends)
//   in-flight-bound       the queue never holds more requests than its size
//   canary-region         the read-only region of guest RAM never changes
//   disk-size             the image keeps its size (nothing written past its end)
//   vmm-resources         descriptors, threads and pinned memory back to where they were after
//                         the queue stops; resident memory within a bound
// Episodes are deterministic: `--seed S --episodes N` runs episodes 0..N-1 again.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>

namespace rf::fuzz {

inline constexpr const char* kVirtioInvariantNames[] = {"one-used-per-request", "in-flight-bound", "canary-region",
                                                        "disk-size", "vmm-resources"};
inline constexpr std::size_t kVirtioInvariantCount = std::size(kVirtioInvariantNames);

struct VirtioCampaignConfig {
  std::chrono::milliseconds duration{60'000};
  std::uint64_t seed = 1;
  std::optional<std::uint32_t> max_episodes;
  std::function<void(std::uint32_t episodes, std::uint64_t requests)> progress;
};

struct VirtioCampaignReport {
  std::uint64_t seed = 0;
  std::uint32_t episodes = 0;
  std::uint64_t actions = 0;
  std::uint64_t requests = 0;    // heads the queues took
  std::uint64_t completed = 0;   // used entries they wrote
  std::uint64_t kernel_ios = 0;  // pieces that reached a private ring
  std::uint64_t io_errors = 0;
  std::map<std::string, std::uint64_t> refused;  // by BlkRefusal name
  std::map<std::string, std::uint32_t> broken;   // episodes by the reason's first words
  std::array<std::uint64_t, kVirtioInvariantCount> checked{};
  std::array<std::uint64_t, kVirtioInvariantCount> violated{};
  std::uint64_t max_rss_kib = 0;
  std::chrono::nanoseconds elapsed{0};
  std::string harness_error;  // the campaign could not run (no io_uring, no loop devices)
  // The first violation: its episode, invariant and what was seen.
  std::optional<std::uint32_t> failed_episode;
  std::string failure;
};

VirtioCampaignReport run_virtio_campaign(const VirtioCampaignConfig& config);

}  // namespace rf::fuzz
