#include "memory/dirty_log.h"

#include <algorithm>
#include <cstdint>

#include "util/checked_math.h"

namespace rf {

std::uint64_t DirtyLog::mark(GuestAddress gpa, std::uint64_t bytes) {
  if (bytes == 0) return 0;
  const std::uint64_t first = gpa.value() / kPageBytes;
  // The last byte's page; a range that would pass 2^64 ends at the top of the address space.
  const auto last_byte = checked_add(gpa.value(), bytes - 1);
  const std::uint64_t last = last_byte ? *last_byte / kPageBytes : UINT64_MAX / kPageBytes;
  if (last >= pages()) out_of_range_.fetch_add(1, std::memory_order_relaxed);
  if (pages() == 0 || first >= pages()) return 0;
  const std::uint64_t end = std::min(last, pages() - 1) + 1;
  for (std::uint64_t page = first; page < end; ++page) {
    // SAFETY: page < pages(), so page / 8 < bits_.size(): inside the mapping, which the log owns.
    auto& byte = *reinterpret_cast<std::uint8_t*>(bits_.bytes() + page / 8);
    std::atomic_ref<std::uint8_t>(byte).fetch_or(static_cast<std::uint8_t>(1u << (page % 8)), std::memory_order_relaxed);
  }
  return end - first;
}

}  // namespace rf
