#include "fuzz/live/footprint.h"

#include <limits>

namespace rf::fuzz {

void WriteFootprint::add(std::uint64_t offset, std::uint64_t length) {
  if (length == 0) return;
  constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();
  std::uint64_t start = offset;
  std::uint64_t end = length > kMax - offset ? kMax : offset + length;
  // Merge with every interval that overlaps or touches [start, end).
  auto it = intervals_.upper_bound(start);
  if (it != intervals_.begin()) {
    auto prev = std::prev(it);
    if (prev->second >= start) it = prev;
  }
  while (it != intervals_.end() && it->first <= end) {
    if (it->first < start) start = it->first;
    if (it->second > end) end = it->second;
    it = intervals_.erase(it);
  }
  intervals_.emplace(start, end);
}

bool WriteFootprint::covers(std::uint64_t offset, std::uint64_t length) const {
  auto it = intervals_.upper_bound(offset);
  if (it == intervals_.begin()) return false;
  --it;
  const std::uint64_t end = length > std::numeric_limits<std::uint64_t>::max() - offset ? 0 : offset + length;
  return end != 0 && it->first <= offset && end <= it->second;
}

std::uint64_t WriteFootprint::bytes_below(std::uint64_t limit) const {
  std::uint64_t total = 0;
  for (const auto& [start, end] : intervals_) {
    if (start >= limit) break;
    total += (end < limit ? end : limit) - start;
  }
  return total;
}

WriteFootprint program_write_footprint(const FuzzProgram& program) {
  WriteFootprint footprint;
  for (const ActionSpec& s : program.actions) {
    if (s.action.op != static_cast<std::uint32_t>(guest::FuzzOp::PutSqe) || !writes_disk(s.action.sqe.opcode)) continue;
    footprint.add(s.action.sqe.off, disk_write_reach(s.action.sqe.opcode, s.action.sqe.len));
  }
  return footprint;
}

}  // namespace rf::fuzz
