#include "util/mmap_region.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace rf {

std::size_t page_size() noexcept {
  static const std::size_t size = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  return size;
}

namespace {

std::atomic<std::size_t> live_regions{0};

Result<MmapRegion, MmapError> do_map(int fd, std::uint64_t offset, std::size_t len, int prot, int flags) {
  if (len == 0) {
    return unexpected(MmapError{MmapErrc::InvalidArgument, 0, "cannot map zero bytes"});
  }
  if ((flags & MAP_FIXED) != 0 || (flags & MAP_FIXED_NOREPLACE) != 0) {
    return unexpected(MmapError{MmapErrc::InvalidArgument, 0,
                                "MAP_FIXED is refused: a fixed mapping can silently replace existing memory"});
  }
  if (offset % page_size() != 0) {
    return unexpected(MmapError{MmapErrc::InvalidArgument, 0,
                                fmt::format("mapping offset {} is not a multiple of the page size {}", offset,
                                            page_size())});
  }
  // SAFETY: no MAP_FIXED, so the kernel picks an address that overlaps nothing we own.
  void* addr = ::mmap(nullptr, len, prot, flags, fd, static_cast<off_t>(offset));
  if (addr == MAP_FAILED) {
    const int err = errno;
    return unexpected(MmapError{MmapErrc::Mmap, err,
                                fmt::format("mmap of {} bytes failed: {}", len, std::strerror(err))});
  }
  return MmapRegion::adopt(addr, len);
}

}  // namespace

Result<MmapRegion, MmapError> MmapRegion::map_anonymous(std::size_t len, int prot) {
  return do_map(-1, 0, len, prot, MAP_PRIVATE | MAP_ANONYMOUS);
}

Result<MmapRegion, MmapError> MmapRegion::map_fd(int fd, std::uint64_t offset, std::size_t len, int prot,
                                                 int flags) {
  if ((flags & MAP_ANONYMOUS) != 0) {
    return unexpected(MmapError{MmapErrc::InvalidArgument, 0, "map_fd() was given MAP_ANONYMOUS"});
  }
  return do_map(fd, offset, len, prot, flags);
}

MmapRegion::MmapRegion(void* addr, std::size_t len) noexcept : addr_(addr), len_(len) {
  if (addr_ != nullptr) live_regions.fetch_add(1, std::memory_order_relaxed);
}

std::size_t MmapRegion::live_count() noexcept { return live_regions.load(std::memory_order_relaxed); }

MmapRegion& MmapRegion::operator=(MmapRegion&& other) noexcept {
  if (this != &other) {
    reset();
    addr_ = std::exchange(other.addr_, nullptr);
    len_ = std::exchange(other.len_, 0);
  }
  return *this;
}

void MmapRegion::reset() noexcept {
  if (addr_ != nullptr) {
    // SAFETY: {addr_, len_} is a mapping this object owns exclusively (created by do_map or
    // handed over through adopt()).
    ::munmap(addr_, len_);
    live_regions.fetch_sub(1, std::memory_order_relaxed);
    addr_ = nullptr;
    len_ = 0;
  }
}

}  // namespace rf
