// GuestMemoryBuilder: makes the memory behind a guest's physical address space and hands out the
// immutable map over it (guest_memory.h). It owns everything about the backing: the memfd and
// its seals, the mappings, or the checks on mappings the VMM already has.
//
// Memory is either one memfd (MAP_SHARED, sealed against shrinking and growing: what a guest
// process or a KVM memory slot can share), anonymous private memory (for a guest that lives in
// the VMM's own process, and for tests), or borrowed: mappings the VMM already has for its
// guest's RAM, which it keeps mapped for as long as the map (and every device on it) lives.
//
// Regions are validated once, here (not empty, page-aligned, sorted, no overlap, base + size
// does not pass 2^64), and the fixed-buffer plan is made once, here.
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "memory/guest_memory.h"

namespace rf {

// A region of guest RAM the VMM has already mapped at `host` (page-aligned), for borrow().
struct BorrowedRegion {
  RegionLayout layout;
  std::byte* host = nullptr;
};

using GuestMemoryMap = std::shared_ptr<const GuestMemory>;

class GuestMemoryBuilder {
 public:
  // Maps `layout` (zero-filled). `max_buffer_bytes` is the largest fixed buffer the plan makes
  // (the kernel's 1 GiB; smaller values exist for tests).
  static Result<GuestMemoryMap, GuestMemoryError> create(std::span<const RegionLayout> layout, MemoryBacking backing,
                                                         std::size_t max_buffer_bytes = kMaxFixedBufferBytes);
  // Describes RAM the VMM mapped itself. Beyond validate_layout(): every host range is
  // page-aligned, mapped (checked with msync), and overlaps no other region's host range (an
  // alias would let a read-only region be written through a writable one). The kernel pins the
  // writable regions when a device registers them: they must be memory it can pin (anonymous,
  // shared memory or a memfd, not a file on disk).
  static Result<GuestMemoryMap, GuestMemoryError> borrow(std::span<const BorrowedRegion> regions,
                                                         std::size_t max_buffer_bytes = kMaxFixedBufferBytes);
  // Like borrow(), but the map owns the mappings: mappings[i] holds region i (at least
  // layout[i].bytes long) and is unmapped when the last holder of the map lets go. For a
  // vhost-user back-end, which maps the front-end's memory fds itself.
  static Result<GuestMemoryMap, GuestMemoryError> adopt(std::span<const RegionLayout> layout,
                                                        std::vector<MmapRegion> mappings,
                                                        std::size_t max_buffer_bytes = kMaxFixedBufferBytes);
  // The checks create() applies, without allocating anything.
  static Result<void, GuestMemoryError> validate_layout(std::span<const RegionLayout> layout);

 private:
  // borrow()'s checks and map, still writable so that adopt() can hand it the mappings.
  static Result<std::shared_ptr<GuestMemory>, GuestMemoryError> map_borrowed(std::span<const BorrowedRegion> regions,
                                                                             std::size_t max_buffer_bytes);
};

}  // namespace rf
