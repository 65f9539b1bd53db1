#include "ring/fresh_ring_memory.h"

#include <sys/mman.h>

#include <cstring>

#include "util/mmap_region.h"

namespace rf {

void give_fresh_pages(std::span<std::byte> memory) {
  const std::size_t whole = memory.size() / page_size() * page_size();
  // SAFETY: the caller hands over [data, data + size) for a ring: nothing else lives there. Both
  // calls act on whole pages of it only (it starts page-aligned, RingCore checked).
  if (whole != 0 && ::madvise(memory.data(), whole, MADV_REMOVE) != 0) (void)::madvise(memory.data(), whole, MADV_DONTNEED);
  std::memset(memory.data(), 0, memory.size());  // fresh pages are zero already; this covers the rest
}

}  // namespace rf
