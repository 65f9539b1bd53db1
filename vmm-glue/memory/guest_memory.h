// GuestMemory: the guest-physical memory map a VMM gives one guest, and the only way the VMM
// turns a guest-physical address into a host pointer.
//
// Regions are validated once, when the map is built (not empty, page-aligned, sorted, no
// overlap, base + size does not pass 2^64). Translation is a binary search plus checked
// arithmetic; a span that crosses from one region into another is refused by translate()
// and split, region by region, only by split() — never silently truncated.
//
// Memory is either one memfd (MAP_SHARED, sealed against shrinking and growing: what a guest
// process or a KVM memory slot can share), anonymous private memory (for a guest that lives
// in the VMM's own process, and for tests), or borrowed: mappings the VMM already has for its
// guest's RAM, which it keeps mapped for as long as the GuestMemory (and every device on it)
// lives.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "memory/guest_address.h"
#include "ring/registered_buffers.h"
#include "util/mmap_region.h"
#include "util/result.h"
#include "util/unique_fd.h"

namespace rf {

enum class GuestMemoryErrc {
  InvalidLayout,  // empty, unaligned, unsorted, overlapping or overflowing regions
  Create,         // memfd_create, ftruncate, sealing or mmap failed (sys_errno says why)
};
using GuestMemoryError = Error<GuestMemoryErrc>;

enum class TranslateErrc {
  Empty,          // zero length
  Overflow,       // gpa + length passes 2^64
  Unmapped,       // some byte of the span is in no region (a gap or past the end)
  CrossesRegion,  // translate(): the span starts in one region and ends in another
  ReadOnly,       // the device would write a region the guest may only read
  TooManyPieces,  // split(): more regions than the caller's output has room for
};
using TranslateError = Error<TranslateErrc>;

enum class MemoryBacking { Memfd, Anonymous, Borrowed };

// Which way the data moves, seen from guest memory.
enum class DeviceAccess {
  ReadsGuest,   // the device reads guest memory (a disk write)
  WritesGuest,  // the device writes guest memory (a disk read)
};

struct RegionLayout {
  GuestAddress base;
  std::uint64_t bytes = 0;
  bool read_only = false;  // the device may read it but never write it; never a fixed buffer
};

struct GuestRegion {
  GuestAddress base;
  std::uint64_t bytes = 0;
  bool read_only = false;
  std::byte* host = nullptr;       // the VMM's mapping (read-write for the VMM itself)
  std::uint64_t memfd_offset = 0;  // where the region starts in memfd() (Memfd backing)
};

// A region of guest RAM the VMM has already mapped at `host` (page-aligned), for borrow().
struct BorrowedRegion {
  RegionLayout layout;
  std::byte* host = nullptr;
};

// Host memory for a guest span that lies inside one region.
struct HostSpan {
  std::byte* host = nullptr;
  std::uint64_t bytes = 0;
  std::size_t region = 0;
};

// The fixed buffer that holds a guest span, for READ_FIXED / WRITE_FIXED.
struct BufferSpan {
  BufferIndex index;
  std::byte* host = nullptr;
};

class GuestMemory {
 public:
  static Result<GuestMemory, GuestMemoryError> create(std::span<const RegionLayout> layout, MemoryBacking backing);
  // Describes RAM the VMM mapped itself. Beyond validate_layout(): every host range is
  // page-aligned, mapped (checked with msync), and overlaps no other region's host range (an
  // alias would let a read-only region be written through a writable one). The kernel pins the
  // writable regions when a device registers them: they must be memory it can pin (anonymous,
  // shared memory or a memfd, not a file on disk).
  static Result<GuestMemory, GuestMemoryError> borrow(std::span<const BorrowedRegion> regions);
  // The checks create() applies, without allocating anything.
  static Result<void, GuestMemoryError> validate_layout(std::span<const RegionLayout> layout);

  GuestMemory(GuestMemory&&) noexcept = default;
  GuestMemory& operator=(GuestMemory&&) noexcept = default;

  std::span<const GuestRegion> regions() const { return regions_; }
  MemoryBacking backing() const { return backing_; }
  // The memfd behind every region (Memfd backing), borrowed; -1 otherwise.
  int memfd() const { return memfd_.get(); }
  std::uint64_t total_bytes() const { return total_bytes_; }

  // The host memory for [gpa, gpa + bytes), which must lie in one region and allow `access`.
  Result<HostSpan, TranslateError> translate(GuestAddress gpa, std::uint64_t bytes, DeviceAccess access) const;
  // Like translate(), but a span across adjacent regions comes back as one piece per region
  // (a gap anywhere is still an error). Returns the number of pieces written to `out`.
  Result<std::size_t, TranslateError> split(GuestAddress gpa, std::uint64_t bytes, DeviceAccess access,
                                            std::span<HostSpan> out) const;

  // Fixed buffers. buffer_regions() lists the writable regions in order (read-only regions
  // are never registered: the kernel cannot tell a READ_FIXED from a WRITE_FIXED by address,
  // so a registered region can always be written). After registering them, hand the table
  // back with set_buffer_table() so that buffer_for() can answer.
  std::vector<BufferRegion> buffer_regions() const;
  void set_buffer_table(BufferTable table);
  const std::optional<BufferTable>& buffer_table() const { return buffer_table_; }
  // The guest-physical start of a registered buffer piece.
  GuestAddress piece_base(const BufferPiece& piece) const;
  // The fixed buffer holding all of [gpa, gpa + bytes): an I/O across two buffers (at a region
  // boundary or at a 1 GiB piece boundary) fails with TranslateErrc::CrossesRegion.
  Result<BufferSpan, TranslateError> buffer_for(GuestAddress gpa, std::uint64_t bytes, DeviceAccess access) const;

 private:
  GuestMemory() = default;
  // The region holding `gpa`, by binary search.
  std::optional<std::size_t> find_region(GuestAddress gpa) const;

  // A registered buffer piece in guest-physical terms, for buffer_for()'s one binary search.
  struct BufferWindow {
    GuestAddress base;
    std::uint64_t bytes = 0;
    std::byte* host = nullptr;
    BufferIndex index;
  };

  // Declared in reverse teardown order: mappings go before the memfd is closed.
  UniqueFd memfd_;
  std::vector<MmapRegion> mappings_;
  std::vector<GuestRegion> regions_;  // sorted by base
  std::vector<std::size_t> buffer_region_to_region_;
  std::optional<BufferTable> buffer_table_;
  std::vector<BufferWindow> buffer_windows_;  // sorted by base
  std::vector<std::uint64_t> buffer_window_bases_;  // the same bases, densely, for the search
  MemoryBacking backing_ = MemoryBacking::Anonymous;
  std::uint64_t total_bytes_ = 0;
};

}  // namespace rf
