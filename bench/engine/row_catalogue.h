// The rows of `ringfence bench`'s table, what each is compared with, and ringfence's performance
// targets: the catalogue the command, its docs and its tests share.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/block_job.h"
#include "engine/guest_job.h"
#include "engine/linux_guest_job.h"
#include "engine/ratio_interval.h"

namespace rf::bench {

// One row: a host row, a process-guest row, a KVM-guest row, a Linux-guest row (QEMU), or fio
// (none of them); and the row it is compared with (empty for bare, the baseline of them all).
struct RowSpec {
  std::string name;
  std::optional<HostRow> host;
  std::optional<GuestRow> guest;
  std::optional<GuestRow> kvm;
  std::string baseline;
  std::optional<LinuxGuestRow> linux_guest;
  bool is_fio() const { return !host && !guest && !kvm && !linux_guest; }
};

// Every row's name, in the catalogue's order, comma-separated (for --help and errors).
std::string row_names();
std::optional<RowSpec> row_from_name(std::string_view name);

// The denominator of a target against whichever host row ran fastest at that depth.
inline constexpr std::string_view kBestHostRow = "best-host";
// The rows `kBestHostRow` chooses from: the host's own rings and fio.
std::vector<std::string> best_host_candidates();

// A target: numerator / denominator (IOPS at the same depth, paired by round) must lie in
// [low, high] at every depth from `min_depth` to `max_depth`; the denominator is a row's name or
// kBestHostRow.
struct PerformanceTarget {
  std::string_view numerator, denominator;
  double low = 0, high = 0;
  std::uint32_t min_depth = 1;
  std::string_view text;
  std::uint32_t max_depth = UINT32_MAX;
  // Whether `ratio` meets it (at a depth it applies to).
  bool met_by(double ratio) const { return ratio >= low && ratio <= high; }
  // Met or missed when the whole interval of `estimate` says so; undecided otherwise.
  Verdict verdict(const RatioEstimate& estimate) const { return decide(estimate, low, high); }
  bool applies_at(std::uint32_t depth) const { return depth >= min_depth && depth <= max_depth; }
};
std::span<const PerformanceTarget> performance_targets();

}  // namespace rf::bench
