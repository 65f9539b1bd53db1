#include "memory/guest_memory_builder.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include <fmt/format.h>

#include "util/address.h"

namespace rf {

namespace {

GuestMemoryError layout_error(std::string message) {
  return GuestMemoryError{GuestMemoryErrc::InvalidLayout, 0, std::move(message)};
}

GuestMemoryError create_error(const char* what) {
  const int err = errno;
  return GuestMemoryError{GuestMemoryErrc::Create, err, fmt::format("{}: {}", what, std::strerror(err))};
}

}  // namespace

Result<void, GuestMemoryError> GuestMemoryBuilder::validate_layout(std::span<const RegionLayout> layout) {
  if (layout.empty()) return unexpected(layout_error("guest memory needs at least one region"));
  const std::uint64_t page = page_size();
  std::optional<GuestAddress> previous_end;
  for (std::size_t i = 0; i < layout.size(); ++i) {
    const RegionLayout& r = layout[i];
    if (r.bytes == 0) return unexpected(layout_error(fmt::format("region {} is empty", i)));
    if (r.base.value() % page != 0 || r.bytes % page != 0) {
      return unexpected(layout_error(fmt::format("region {} ({:#x}+{:#x}) is not page-aligned", i, r.base.value(), r.bytes)));
    }
    const auto end = r.base.checked_add(r.bytes);
    if (!end) return unexpected(layout_error(fmt::format("region {}: base {:#x} + size {:#x} passes 2^64", i, r.base.value(), r.bytes)));
    if (previous_end && r.base < *previous_end) {
      return unexpected(layout_error(fmt::format("region {} at {:#x} overlaps or precedes region {} (regions must be "
                                                 "sorted by base and must not overlap)", i, r.base.value(), i - 1)));
    }
    previous_end = end;
  }
  return {};
}

Result<GuestMemoryMap, GuestMemoryError> GuestMemoryBuilder::borrow(std::span<const BorrowedRegion> regions,
                                                                   std::size_t max_buffer_bytes) {
  auto memory = map_borrowed(regions, max_buffer_bytes);
  if (!memory) return unexpected(std::move(memory).error());
  return GuestMemoryMap(std::move(*memory));
}

Result<std::shared_ptr<GuestMemory>, GuestMemoryError> GuestMemoryBuilder::map_borrowed(std::span<const BorrowedRegion> regions,
                                                                                        std::size_t max_buffer_bytes) {
  std::vector<RegionLayout> layout;
  layout.reserve(regions.size());
  for (const BorrowedRegion& r : regions) layout.push_back(r.layout);
  RF_TRY_VOID(validate_layout(layout));
  std::shared_ptr<GuestMemory> memory(new GuestMemory());
  memory->backing_ = MemoryBacking::Borrowed;
  std::vector<std::pair<std::uintptr_t, std::uintptr_t>> host_ranges;  // [start, end)
  for (const BorrowedRegion& r : regions) {
    const std::uintptr_t start = address_of(r.host);
    const auto end = checked_add(std::uint64_t{start}, r.layout.bytes);
    if (r.host == nullptr || start % page_size() != 0 || !end) {
      return unexpected(layout_error(fmt::format("the host mapping {} of region {:#x}+{:#x} is not a page-aligned range",
                                                 static_cast<const void*>(r.host), r.layout.base.value(), r.layout.bytes)));
    }
    // SAFETY: msync only inspects the range: MS_ASYNC writes nothing back, and it fails with
    // ENOMEM when any page of it is not mapped.
    if (::msync(r.host, static_cast<std::size_t>(r.layout.bytes), MS_ASYNC) != 0) {
      return unexpected(GuestMemoryError{GuestMemoryErrc::InvalidLayout, errno,
                                         fmt::format("the host range {}+{:#x} of region {:#x} is not entirely mapped",
                                                     static_cast<const void*>(r.host), r.layout.bytes, r.layout.base.value())});
    }
    for (const auto& [other_start, other_end] : host_ranges) {
      if (start < other_end && other_start < *end) {
        return unexpected(layout_error(fmt::format("region {:#x} shares host memory with another region", r.layout.base.value())));
      }
    }
    host_ranges.emplace_back(start, static_cast<std::uintptr_t>(*end));
    memory->regions_.push_back(GuestRegion{r.layout.base, r.layout.bytes, r.layout.read_only, r.host, 0});
    memory->total_bytes_ += r.layout.bytes;  // validate_layout: the regions do not overlap in 2^64
  }
  RF_TRY_VOID(memory->plan_buffers(max_buffer_bytes));
  return memory;
}

Result<GuestMemoryMap, GuestMemoryError> GuestMemoryBuilder::adopt(std::span<const RegionLayout> layout,
                                                                  std::vector<MmapRegion> mappings,
                                                                  std::size_t max_buffer_bytes) {
  if (mappings.size() != layout.size()) {
    return unexpected(layout_error(fmt::format("{} regions but {} mappings", layout.size(), mappings.size())));
  }
  std::vector<BorrowedRegion> regions;
  regions.reserve(layout.size());
  for (std::size_t i = 0; i < layout.size(); ++i) {
    if (mappings[i].size() < layout[i].bytes) {
      return unexpected(layout_error(fmt::format("region {} ({:#x} bytes) is larger than its mapping ({:#x} bytes)", i,
                                                 layout[i].bytes, mappings[i].size())));
    }
    regions.push_back(BorrowedRegion{layout[i], mappings[i].bytes()});
  }
  auto memory = map_borrowed(regions, max_buffer_bytes);
  if (!memory) return unexpected(std::move(memory).error());
  (*memory)->mappings_ = std::move(mappings);
  return GuestMemoryMap(std::move(*memory));
}

Result<GuestMemoryMap, GuestMemoryError> GuestMemoryBuilder::create(std::span<const RegionLayout> layout,
                                                                   MemoryBacking backing, std::size_t max_buffer_bytes) {
  if (backing == MemoryBacking::Borrowed) return unexpected(layout_error("borrowed memory is described with borrow(), not created"));
  RF_TRY_VOID(validate_layout(layout));
  std::shared_ptr<GuestMemory> memory(new GuestMemory());
  memory->backing_ = backing;
  std::uint64_t total = 0;
  for (const RegionLayout& r : layout) {
    const auto sum = checked_add(total, r.bytes);
    if (!sum || *sum > static_cast<std::uint64_t>(INT64_MAX)) return unexpected(layout_error("guest memory is larger than a memfd can hold"));
    total = *sum;
  }
  memory->total_bytes_ = total;

  if (backing == MemoryBacking::Memfd) {
    // Sealed so that nobody holding the memfd (a guest process) can shrink it under the VMM's
    // mappings (SIGBUS in the VMM) or grow it.
    memory->memfd_.reset(::memfd_create("ringfence-guest-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING));
    if (!memory->memfd_) return unexpected(create_error("memfd_create for guest RAM"));
    if (::ftruncate(memory->memfd_.get(), static_cast<off_t>(total)) != 0) {
      return unexpected(create_error("sizing the guest RAM memfd"));
    }
    if (::fcntl(memory->memfd_.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
      return unexpected(create_error("sealing the guest RAM memfd"));
    }
  }

  std::uint64_t offset = 0;
  for (const RegionLayout& r : layout) {
    const auto len = static_cast<std::size_t>(r.bytes);
    auto mapping = backing == MemoryBacking::Memfd
                       ? MmapRegion::map_fd(memory->memfd_.get(), offset, len, PROT_READ | PROT_WRITE)
                       : MmapRegion::map_anonymous(len);
    if (!mapping) {
      return unexpected(GuestMemoryError{GuestMemoryErrc::Create, mapping.error().sys_errno,
                                         fmt::format("mapping guest region {:#x}+{:#x}: {}", r.base.value(), r.bytes,
                                                     mapping.error().message)});
    }
    memory->regions_.push_back(GuestRegion{r.base, r.bytes, r.read_only, mapping->bytes(),
                                           backing == MemoryBacking::Memfd ? offset : 0});
    memory->mappings_.push_back(std::move(*mapping));
    offset += r.bytes;  // bounded by `total` above
  }
  RF_TRY_VOID(memory->plan_buffers(max_buffer_bytes));
  return GuestMemoryMap(std::move(memory));
}

}  // namespace rf
