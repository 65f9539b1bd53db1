// A fuzz campaign: episodes of generate → run → check, each from (seed, episode), until the time
// is up or an invariant breaks (the campaign stops at the first violation, keeping its program
// for --replay). A watchdog ends the process if an episode hangs.
#pragma once

#include <array>
#include <bitset>
#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include "fuzz/live/episode.h"

namespace rf::fuzz {

struct CampaignProgress {
  std::uint32_t episodes = 0;
  std::uint64_t sqes = 0;
  std::chrono::nanoseconds elapsed{0};
};

struct CampaignConfig {
  std::chrono::milliseconds duration{60'000};
  std::uint64_t seed = 1;
  std::optional<std::uint32_t> max_episodes;
  // An episode running longer than this is a hang: the watchdog writes `hang_report` (the
  // episode's program, as JSON, if a path is set), says so on stderr and exits with status 3.
  std::chrono::milliseconds watchdog{120'000};
  std::string hang_report;
  std::function<void(const CampaignProgress&)> progress;  // after each episode
};

struct InvariantTally {
  std::uint64_t checked = 0;
  std::uint64_t violated = 0;
};

struct CampaignReport {
  std::uint64_t seed = 0;
  std::uint32_t episodes = 0;
  std::uint64_t sqes = 0;       // SQEs the device took (kernel or mediator counters)
  std::uint64_t cqes = 0;       // completions it posted
  std::uint64_t refused = 0;    // mediated: refused by the validator
  std::uint64_t dropped = 0;    // passthrough: dropped by the kernel (invalid index entries)
  std::uint64_t actions = 0;    // guest actions generated
  std::uint32_t chaos_episodes = 0;   // episodes that break the SQ protocol
  std::uint32_t inexact_accounting = 0;  // episodes where drops could not be counted
  std::uint32_t stalled = 0;          // guests that gave up waiting for SQ room
  std::uint32_t guest_timeouts = 0;
  std::uint32_t guest_crashes = 0;    // guests killed by a signal we did not send (a fuzzer bug)
  std::map<std::string, std::uint32_t> broken;  // mediated: episodes by broken reason
  std::bitset<256> opcodes_sent, flags_sent;
  std::array<InvariantTally, kInvariantCount> invariants{};
  std::uint64_t disk_changed_bytes = 0;
  std::chrono::nanoseconds elapsed{0};
  std::chrono::nanoseconds max_teardown{0};
  std::uint64_t max_rss_kib = 0;
  std::optional<EpisodeResult> failure;  // the first episode with a violation
  std::optional<FuzzProgram> failure_program;
  std::string harness_error;  // the rig could not run an episode

  double sqes_per_second() const;
  double episodes_per_second() const;
  bool clean() const { return !failure && harness_error.empty(); }
};

CampaignReport run_campaign(FuzzRig& rig, const CampaignConfig& config);

// Adds one episode's numbers to `report` (the campaign, and --replay, use it).
void tally_episode(CampaignReport& report, const FuzzProgram& program, const EpisodeResult& result);

}  // namespace rf::fuzz
