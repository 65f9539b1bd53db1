// FuzzRig: everything `ringfence fuzz` keeps across episodes (a disk image behind a loop device,
// its shadow copy, the decoy file, the VMM's resource baseline), and one episode: a fresh
// sandboxed device and guest process, a FuzzProgram acted out by the guest, then every
// invariant checked from the VMM side.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "fuzz/live/program.h"
#include "fuzz/live/resource_usage.h"
#include "fuzz/live/ring_accounting.h"
#include "fuzz/live/watchers.h"
#include "passthrough/passthrough_device.h"
#include "ring/restriction.h"
#include "sandbox/guest_process.h"
#include "util/temp_dir.h"

namespace rf::fuzz {

struct FuzzRigConfig {
  abi::Mode mode = abi::Mode::Passthrough;
  // Passthrough: who takes the guest's SQEs (the device thread, or the opt-in SQPOLL thread).
  PassthroughSubmitter submitter = PassthroughSubmitter::DeviceThread;
  std::uint64_t ram_bytes = 8ull << 20;
  std::uint64_t disk_bytes = 4ull << 20;
  unsigned queue_depth = 64;
  // The device's restriction set; default: the mode's built-in policy. Tests weaken it to see
  // the invariants catch what gets through.
  std::optional<RestrictionSet> restrictions;
  std::string guest_binary = default_guest_binary();
  std::chrono::milliseconds guest_timeout{10'000};
  std::chrono::milliseconds settle_timeout{5'000};
  std::uint64_t rss_slack_kib = 64 * 1024;
};

// The invariants, in the order they are checked.
inline constexpr const char* kInvariantNames[] = {"one-cqe-per-sqe", "canary-pages", "decoy-file", "shadow-disk",
                                                  "vmm-resources"};
inline constexpr std::size_t kInvariantCount = std::size(kInvariantNames);

struct Violation {
  std::string invariant;  // one of kInvariantNames
  std::string detail;
};

struct EpisodeResult {
  std::uint32_t episode = 0;
  Settlement settlement;
  GuestExitStatus guest_exit;
  std::optional<guest::FuzzGuestReport> guest;  // untrusted
  bool guest_timed_out = false;
  bool shadow_exact = false;  // the shadow check ran (mediated; passthrough episodes that keep the SQ protocol)
  std::uint64_t disk_changed_bytes = 0;
  std::uint64_t footprint_bytes = 0;
  std::vector<Violation> violations;
  std::chrono::nanoseconds elapsed{0};
  std::chrono::nanoseconds teardown{0};
  ResourceUsage resources;  // the VMM's, after teardown (what the vmm-resources check saw last)
};

class FuzzRig {
 public:
  static Result<std::unique_ptr<FuzzRig>, std::string> create(const FuzzRigConfig& config);
  ~FuzzRig();
  const FuzzRigConfig& config() const { return config_; }
  const FuzzGeometry& geometry() const { return geometry_; }
  const ResourceUsage& baseline() const { return baseline_; }
  // What the VMM holds now becomes what it must come back to after each episode (for a caller
  // that starts threads of its own, such as the campaign's watchdog).
  void take_baseline();
  std::string disk_description() const { return disk_->describe(); }
  // Runs one episode. An error means the rig could not run it (no device, no guest): not a violation.
  Result<EpisodeResult, std::string> run(const FuzzProgram& program);

 private:
  FuzzRig() = default;
  FuzzRigConfig config_;
  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<Disk> disk_;
  std::unique_ptr<ShadowDisk> shadow_;
  std::unique_ptr<DecoyFile> decoy_;
  FuzzGeometry geometry_;
  ResourceUsage baseline_;
};

}  // namespace rf::fuzz
