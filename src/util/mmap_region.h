// MmapRegion: owns one mapping {ptr, len} and unmaps it in its destructor.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>

#include "util/result.h"

namespace rf {

enum class MmapErrc {
  InvalidArgument,  // zero length, MAP_FIXED, a misaligned offset
  Mmap,             // mmap(2) failed; sys_errno says why
};
using MmapError = Error<MmapErrc>;

class MmapRegion {
 public:
  // Anonymous private memory, zero-filled.
  static Result<MmapRegion, MmapError> map_anonymous(std::size_t len, int prot = PROT_READ | PROT_WRITE);

  // A view of `fd` at `offset` (page-aligned). `flags` must not contain MAP_FIXED: a mapping
  // that can replace whatever lives at an address is never what a caller here wants.
  static Result<MmapRegion, MmapError> map_fd(int fd, std::uint64_t offset, std::size_t len, int prot,
                                              int flags = MAP_SHARED);

  // Takes ownership of a mapping someone else created with mmap(2); the region will munmap it.
  static MmapRegion adopt(void* addr, std::size_t len) noexcept { return MmapRegion(addr, len); }

  MmapRegion() noexcept = default;
  MmapRegion(MmapRegion&& other) noexcept
      : addr_(std::exchange(other.addr_, nullptr)), len_(std::exchange(other.len_, 0)) {}
  MmapRegion& operator=(MmapRegion&& other) noexcept;
  MmapRegion(const MmapRegion&) = delete;
  MmapRegion& operator=(const MmapRegion&) = delete;
  ~MmapRegion() { reset(); }

  void* data() const noexcept { return addr_; }
  std::byte* bytes() const noexcept { return static_cast<std::byte*>(addr_); }
  std::size_t size() const noexcept { return len_; }
  std::span<std::byte> span() const noexcept { return {bytes(), len_}; }
  explicit operator bool() const noexcept { return addr_ != nullptr; }

  void reset() noexcept;

  // How many mappings MmapRegion objects own in this process right now: lets a leak test count
  // the library's own mappings apart from the C library's (malloc arenas, cached thread stacks),
  // which come and go on their own schedule.
  static std::size_t live_count() noexcept;

 private:
  MmapRegion(void* addr, std::size_t len) noexcept;

  void* addr_ = nullptr;
  std::size_t len_ = 0;
};

std::size_t page_size() noexcept;

}  // namespace rf
