#include "audit/audit_ring.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "ring/setup.h"

namespace rf {

std::string_view ring_shape_label(RingShape shape) {
  return shape == RingShape::GuestShared ? "SQPOLL, rings in guest RAM (NO_MMAP)" : "private ring, io_uring_enter";
}

namespace {

Result<UniqueFd, RingError> make_memfd(const char* name, std::size_t bytes) {
  UniqueFd fd(::memfd_create(name, MFD_CLOEXEC));
  if (!fd || ::ftruncate(fd.get(), static_cast<off_t>(bytes)) != 0) {
    const int err = errno;
    return unexpected(RingError{RingErrc::InvalidOptions, err, fmt::format("memfd {}: {}", name, std::strerror(err))});
  }
  return fd;
}

}  // namespace

Result<AuditRing, RingError> AuditRing::create(const RestrictionSet& set, RingShape shape) {
  const auto start = std::chrono::steady_clock::now();
  auto disk = make_memfd("ringfence-audit-disk", kDiskBytes);
  if (!disk) return unexpected(std::move(disk).error());

  RingOptions options;
  options.sq_entries = 16;
  std::size_t ring_bytes = 0;
  RingMemoryLayout layout;
  if (shape == RingShape::GuestShared) {
    options.sqpoll = SqPollOptions{std::nullopt, std::chrono::milliseconds(50)};
    auto l = ring_memory_layout(options);
    if (!l) return unexpected(std::move(l).error());
    layout = *l;
    ring_bytes = layout.rings_bytes + layout.sqes_bytes;
  }
  // "Guest RAM": the rings (GuestShared), then the registered buffer, then one unregistered
  // page so that an address just past the buffer is still mapped memory.
  const std::size_t ram_bytes = ring_bytes + kBufferBytes + page_size();
  auto ram_fd = make_memfd("ringfence-audit-ram", ram_bytes);
  if (!ram_fd) return unexpected(std::move(ram_fd).error());
  auto ram = MmapRegion::map_fd(ram_fd->get(), 0, ram_bytes, PROT_READ | PROT_WRITE);  // outlives the memfd
  if (!ram) return unexpected(RingError{RingErrc::Mmap, ram.error().sys_errno, ram.error().message});
  if (shape == RingShape::GuestShared) {
    options.caller_memory = CallerRingMemory{ram->span().first(layout.rings_bytes),
                                             ram->span().subspan(layout.rings_bytes, layout.sqes_bytes)};
  }

  auto disabled = DisabledRing::create(options);
  if (!disabled) return unexpected(std::move(disabled).error());
  const int files[] = {disk->get()};
  RF_TRY_VOID(disabled->register_files(files));
  const BufferRegion buffer{ram->bytes() + ring_bytes, kBufferBytes};
  auto table = disabled->register_buffers({&buffer, 1});
  if (!table) return unexpected(std::move(table).error());
  auto restricted = std::move(*disabled).restrict(set);
  if (!restricted) return unexpected(std::move(restricted).error());
  auto ring = std::move(*restricted).enable();
  if (!ring) return unexpected(std::move(ring).error());

  AuditRing audit(std::move(*disk), std::move(*ram), ring_bytes, std::move(*ring), shape);
  audit.setup_time_ = std::chrono::steady_clock::now() - start;
  return audit;
}

Sqe AuditRing::read_fixed(std::uint64_t disk_offset, std::uint32_t len, std::size_t buffer_offset) const {
  return Sqe::read_fixed(FileRef::fixed({0}), buffer() + buffer_offset, len, disk_offset, buffer_index());
}

Sqe AuditRing::write_fixed(std::uint64_t disk_offset, std::uint32_t len, std::size_t buffer_offset) const {
  return Sqe::write_fixed(FileRef::fixed({0}), buffer() + buffer_offset, len, disk_offset, buffer_index());
}

}  // namespace rf
