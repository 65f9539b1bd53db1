// AuditRing: a restricted ring set up the way a VMM would, over throwaway resources, for
// checking what the kernel enforces: one disk (a memfd), one registered buffer, and the ring
// in one of the two data-path shapes. Used by the demo's enforcement matrix and by tests.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ring/restriction.h"
#include "ring/ring.h"
#include "util/mmap_region.h"
#include "util/unique_fd.h"

namespace rf {

enum class RingShape {
  // The passthrough shape: rings and SQEs in caller-provided "guest RAM" (IORING_SETUP_NO_MMAP),
  // consumed by an SQPOLL thread.
  GuestShared,
  // The mediated shape: the VMM's private ring, kernel-mapped, submitted with io_uring_enter.
  Private,
};

std::string_view ring_shape_label(RingShape shape);

class AuditRing {
 public:
  static constexpr std::size_t kDiskBytes = 1 << 20;
  static constexpr std::size_t kBufferBytes = 64 << 10;

  static Result<AuditRing, RingError> create(const RestrictionSet& set, RingShape shape);

  Ring& ring() { return ring_; }
  RingShape shape() const { return shape_; }
  int disk_fd() const { return disk_.get(); }
  // The registered buffer (fixed buffer 0); the bytes after it are not registered.
  std::byte* buffer() const { return guest_ram_.bytes() + buffer_offset_; }
  BufferIndex buffer_index() const { return BufferIndex{0}; }
  std::chrono::nanoseconds setup_time() const { return setup_time_; }

  // Valid block I/O on disk 0 through buffer 0, with FIXED_FILE.
  Sqe read_fixed(std::uint64_t disk_offset, std::uint32_t len, std::size_t buffer_offset = 0) const;
  Sqe write_fixed(std::uint64_t disk_offset, std::uint32_t len, std::size_t buffer_offset = 0) const;

 private:
  AuditRing(UniqueFd disk, MmapRegion ram, std::size_t buffer_offset, Ring ring, RingShape shape)
      : disk_(std::move(disk)), guest_ram_(std::move(ram)), buffer_offset_(buffer_offset), ring_(std::move(ring)),
        shape_(shape) {}

  // Declared in reverse teardown order: the ring is closed before the memory it uses
  // (its rings, in the GuestShared shape, and its registered buffer) is unmapped.
  UniqueFd disk_;
  MmapRegion guest_ram_;  // a shared mapping of a memfd, like a VMM's guest RAM
  std::size_t buffer_offset_ = 0;
  Ring ring_;
  RingShape shape_;
  std::chrono::nanoseconds setup_time_{0};
};

}  // namespace rf
