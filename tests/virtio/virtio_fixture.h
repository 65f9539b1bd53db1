// Guest memory for the virtio tests: two regions with a hole between them (as QEMU's x86
// machines have around the PCI hole), and the test's view of them.
#pragma once

#include <gtest/gtest.h>

#include "memory/guest_memory_builder.h"
#include "support/virtio_driver.h"

namespace rf::test {

inline constexpr std::uint64_t kLowBase = 0, kLowBytes = 1 << 20;       // [0, 1 MiB)
inline constexpr std::uint64_t kHighBase = 2 << 20, kHighBytes = 2 << 20;  // [2 MiB, 4 MiB)
inline constexpr std::uint64_t kHole = 1 << 20;                          // [1 MiB, 2 MiB): no RAM

// `piece_bytes` cuts the fixed-buffer plan finer than the kernel's 1 GiB, so that tests reach
// buffer boundaries in a few MiB.
inline GuestMemoryMap make_two_region_memory(MemoryBacking backing = MemoryBacking::Anonymous,
                                             std::size_t piece_bytes = 1 << 20) {
  const RegionLayout layout[] = {{GuestAddress{kLowBase}, kLowBytes, false}, {GuestAddress{kHighBase}, kHighBytes, false}};
  auto memory = GuestMemoryBuilder::create(layout, backing, piece_bytes);
  if (!memory) throw std::runtime_error(memory.error().message);
  return *memory;
}

inline GuestView view_of(const GuestMemory& memory) {
  GuestView view;
  for (const GuestRegion& r : memory.regions()) view.regions.push_back({r.base.value(), r.bytes, r.host});
  return view;
}

}  // namespace rf::test
