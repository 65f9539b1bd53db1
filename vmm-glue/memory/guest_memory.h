// GuestMemory: the guest-physical memory map a VMM gives one guest, and the only way the VMM
// turns a guest-physical address into a host pointer. The read side only: GuestMemoryBuilder
// (guest_memory_builder.h) maps or borrows the memory and builds the map.
//
// A map is immutable: its regions, its mappings and its fixed-buffer plan (the writable regions
// cut into pieces of at most 1 GiB, buffer i = piece i) are fixed when it is built, so any number
// of devices and threads may read it at once with no lock. Every device over a map registers
// the map's plan, so a buffer index means the same memory on every ring. A changed memory map
// (a VMM's new memory table) is a new map; devices keep the map they were built on alive
// (std::shared_ptr<const GuestMemory>).
//
// Translation is a binary search plus checked arithmetic; a span that crosses from one region
// into another is refused by translate() and split, region by region, only by split() — never
// silently truncated. A refusal is a code and the values it was asked about: nothing is
// formatted or allocated until someone shows it (describe()), so a guest that submits refused
// requests as fast as it can makes the device allocate nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "memory/guest_address.h"
#include "memory/window_claims.h"
#include "ring/registered_buffers.h"
#include "util/mmap_region.h"
#include "util/result.h"
#include "util/unique_fd.h"

namespace rf {

enum class GuestMemoryErrc {
  InvalidLayout,  // empty, unaligned, unsorted, overlapping or overflowing regions; too many buffers
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
  NotABuffer,     // buffer_for(): the span is in a region that is not a fixed buffer (read-only)
  CrossesBuffer,  // buffer_for(): the span crosses from one fixed buffer into the next
};

// Why a guest span was refused: the code and the span, nothing allocated.
struct TranslateError {
  TranslateErrc code = TranslateErrc::Empty;
  GuestAddress gpa;
  std::uint64_t bytes = 0;
  // "guest range 0x1000+0x200: touches a gap in guest RAM" and the like (allocates).
  std::string describe() const;
};
std::string_view translate_errc_text(TranslateErrc code);

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

// One piece of the fixed-buffer plan in guest-physical terms: a buffer window of the ABI.
struct BufferWindow {
  GuestAddress base;
  std::uint64_t bytes = 0;
  std::byte* host = nullptr;
  BufferIndex index;
};

class GuestMemory {
 public:
  GuestMemory(const GuestMemory&) = delete;
  GuestMemory& operator=(const GuestMemory&) = delete;

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

  // The fixed-buffer plan: the writable regions in address order, in pieces of at most the
  // builder's piece size (1 GiB), registered by every device as buffers 0..n-1. Read-only
  // regions are never in it: the kernel cannot tell a READ_FIXED from a WRITE_FIXED by address,
  // so a registered region can always be written. Empty when no region is writable.
  const BufferTable& buffer_plan() const { return buffer_plan_; }
  // The same pieces in guest-physical order.
  std::span<const BufferWindow> buffer_windows() const { return buffer_windows_; }
  // The fixed buffer holding all of [gpa, gpa + bytes): an I/O across two buffers (at a region
  // boundary or at a 1 GiB piece boundary) fails with CrossesRegion or CrossesBuffer.
  Result<BufferSpan, TranslateError> buffer_for(GuestAddress gpa, std::uint64_t bytes, DeviceAccess access) const;
  // The buffer window holding `gpa`, or null: for a device that cuts a guest span into I/Os
  // that each stay inside one buffer (virtio, whose guests are not told the windows).
  const BufferWindow* buffer_window_at(GuestAddress gpa) const;

  // The device windows claimed on this map (window_claims.h): the one part that changes.
  WindowClaims& window_claims() const { return *claims_; }

 private:
  friend class GuestMemoryBuilder;
  GuestMemory() = default;
  // The region holding `gpa`, by binary search.
  std::optional<std::size_t> find_region(GuestAddress gpa) const;
  // Builds the buffer plan and windows from the regions (the builder's last step).
  Result<void, GuestMemoryError> plan_buffers(std::size_t max_piece_bytes);

  // Declared in reverse teardown order: mappings go before the memfd is closed.
  UniqueFd memfd_;
  std::vector<MmapRegion> mappings_;
  std::vector<GuestRegion> regions_;  // sorted by base
  BufferTable buffer_plan_;
  std::vector<BufferWindow> buffer_windows_;        // sorted by base
  std::vector<std::uint64_t> buffer_window_bases_;  // the same bases, densely, for the search
  MemoryBacking backing_ = MemoryBacking::Anonymous;
  std::uint64_t total_bytes_ = 0;
  std::shared_ptr<WindowClaims> claims_ = WindowClaims::create();
};

}  // namespace rf
