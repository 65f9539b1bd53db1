// WriteFootprint: the byte ranges of a disk that accepted writes may have changed, as a set
// of disjoint intervals. The shadow-disk check asks it whether each changed sector lies inside.
#pragma once

#include <cstdint>
#include <map>

#include "fuzz/live/program.h"

namespace rf::fuzz {

class WriteFootprint {
 public:
  // Adds [offset, offset + length), clipped at 2^64 (saturating, never wrapping).
  void add(std::uint64_t offset, std::uint64_t length);
  // True if all of [offset, offset + length) is inside the footprint.
  bool covers(std::uint64_t offset, std::uint64_t length) const;
  // Bytes covered below `limit` (for reports: how much of the disk the episode could touch).
  std::uint64_t bytes_below(std::uint64_t limit) const;
  void clear() { intervals_.clear(); }

 private:
  std::map<std::uint64_t, std::uint64_t> intervals_;  // start -> end (exclusive), disjoint, not touching
};

// The footprint of a program that keeps the SQ protocol: every disk-writing SQE it puts.
WriteFootprint program_write_footprint(const FuzzProgram& program);

}  // namespace rf::fuzz
