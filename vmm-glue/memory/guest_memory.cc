#include "memory/guest_memory.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>


namespace rf {

namespace {

GuestMemoryError layout_error(std::string message) {
  return GuestMemoryError{GuestMemoryErrc::InvalidLayout, 0, std::move(message)};
}

GuestMemoryError create_error(const char* what) {
  const int err = errno;
  return GuestMemoryError{GuestMemoryErrc::Create, err, fmt::format("{}: {}", what, std::strerror(err))};
}

TranslateError translate_error(TranslateErrc code, GuestAddress gpa, std::uint64_t bytes, const char* why) {
  return TranslateError{code, 0, fmt::format("guest range {:#x}+{:#x}: {}", gpa.value(), bytes, why)};
}

bool allows(const GuestRegion& region, DeviceAccess access) {
  return !(region.read_only && access == DeviceAccess::WritesGuest);
}

}  // namespace

Result<void, GuestMemoryError> GuestMemory::validate_layout(std::span<const RegionLayout> layout) {
  if (layout.empty()) return unexpected(layout_error("guest memory needs at least one region"));
  const std::uint64_t page = page_size();
  std::optional<GuestAddress> previous_end;
  for (std::size_t i = 0; i < layout.size(); ++i) {
    const RegionLayout& r = layout[i];
    if (r.bytes == 0) return unexpected(layout_error(fmt::format("region {} is empty", i)));
    if (r.base.value() % page != 0 || r.bytes % page != 0) {
      return unexpected(layout_error(fmt::format("region {} ({:#x}+{:#x}) is not page-aligned", i, r.base.value(), r.bytes)));
    }
    const auto end = r.base.plus(r.bytes);
    if (!end) return unexpected(layout_error(fmt::format("region {}: base {:#x} + size {:#x} passes 2^64", i, r.base.value(), r.bytes)));
    if (previous_end && r.base < *previous_end) {
      return unexpected(layout_error(fmt::format("region {} at {:#x} overlaps or precedes region {} (regions must be "
                                                 "sorted by base and must not overlap)", i, r.base.value(), i - 1)));
    }
    previous_end = end;
  }
  return {};
}

Result<GuestMemory, GuestMemoryError> GuestMemory::borrow(std::span<const BorrowedRegion> regions) {
  std::vector<RegionLayout> layout;
  layout.reserve(regions.size());
  for (const BorrowedRegion& r : regions) layout.push_back(r.layout);
  RF_TRY_VOID(validate_layout(layout));
  GuestMemory memory;
  memory.backing_ = MemoryBacking::Borrowed;
  std::vector<std::pair<std::uintptr_t, std::uintptr_t>> host_ranges;  // [start, end)
  for (const BorrowedRegion& r : regions) {
    const auto start = reinterpret_cast<std::uintptr_t>(r.host);
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
    memory.regions_.push_back(GuestRegion{r.layout.base, r.layout.bytes, r.layout.read_only, r.host, 0});
    memory.total_bytes_ += r.layout.bytes;  // validate_layout: the regions do not overlap in 2^64
  }
  return memory;
}

Result<GuestMemory, GuestMemoryError> GuestMemory::create(std::span<const RegionLayout> layout,
                                                          MemoryBacking backing) {
  RF_TRY_VOID(validate_layout(layout));
  GuestMemory memory;
  memory.backing_ = backing;
  std::uint64_t total = 0;
  for (const RegionLayout& r : layout) {
    const auto sum = checked_add(total, r.bytes);
    if (!sum || *sum > static_cast<std::uint64_t>(INT64_MAX)) return unexpected(layout_error("guest memory is larger than a memfd can hold"));
    total = *sum;
  }
  memory.total_bytes_ = total;

  if (backing == MemoryBacking::Memfd) {
    // Sealed so that nobody holding the memfd (a guest process) can shrink it under the VMM's
    // mappings (SIGBUS in the VMM) or grow it.
    memory.memfd_.reset(::memfd_create("ringfence-guest-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING));
    if (!memory.memfd_) return unexpected(create_error("memfd_create for guest RAM"));
    if (::ftruncate(memory.memfd_.get(), static_cast<off_t>(total)) != 0) {
      return unexpected(create_error("sizing the guest RAM memfd"));
    }
    if (::fcntl(memory.memfd_.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
      return unexpected(create_error("sealing the guest RAM memfd"));
    }
  }

  std::uint64_t offset = 0;
  for (const RegionLayout& r : layout) {
    const auto len = static_cast<std::size_t>(r.bytes);
    auto mapping = backing == MemoryBacking::Memfd
                       ? MmapRegion::map_fd(memory.memfd_.get(), offset, len, PROT_READ | PROT_WRITE)
                       : MmapRegion::map_anonymous(len);
    if (!mapping) {
      return unexpected(GuestMemoryError{GuestMemoryErrc::Create, mapping.error().sys_errno,
                                         fmt::format("mapping guest region {:#x}+{:#x}: {}", r.base.value(), r.bytes,
                                                     mapping.error().message)});
    }
    memory.regions_.push_back(GuestRegion{r.base, r.bytes, r.read_only, mapping->bytes(),
                                          backing == MemoryBacking::Memfd ? offset : 0});
    memory.mappings_.push_back(std::move(*mapping));
    offset += r.bytes;  // bounded by `total` above
  }
  return memory;
}

std::optional<std::size_t> GuestMemory::find_region(GuestAddress gpa) const {
  // The last region whose base is <= gpa, then check that gpa is inside it.
  auto it = std::upper_bound(regions_.begin(), regions_.end(), gpa,
                             [](GuestAddress a, const GuestRegion& r) { return a < r.base; });
  if (it == regions_.begin()) return std::nullopt;
  --it;
  const std::uint64_t offset = *gpa.offset_from(it->base);  // it->base <= gpa by the search
  if (offset >= it->bytes) return std::nullopt;
  return static_cast<std::size_t>(it - regions_.begin());
}

Result<HostSpan, TranslateError> GuestMemory::translate(GuestAddress gpa, std::uint64_t bytes,
                                                        DeviceAccess access) const {
  if (bytes == 0) return unexpected(translate_error(TranslateErrc::Empty, gpa, bytes, "zero length"));
  const auto last = gpa.plus(bytes - 1);
  if (!last) return unexpected(translate_error(TranslateErrc::Overflow, gpa, bytes, "passes 2^64"));
  const auto first_region = find_region(gpa);
  if (!first_region) return unexpected(translate_error(TranslateErrc::Unmapped, gpa, bytes, "starts outside guest RAM"));
  const GuestRegion& region = regions_[*first_region];
  const std::uint64_t offset = *gpa.offset_from(region.base);
  if (bytes > region.bytes - offset) {  // offset < region.bytes, so no underflow
    // CrossesRegion only if every byte is mapped (split() would succeed); a gap anywhere in the
    // span is Unmapped. Adjacent regions are contiguous in the sorted list, so walk them.
    std::size_t index = *first_region;
    while (index + 1 < regions_.size() && regions_[index + 1].base == *regions_[index].base.plus(regions_[index].bytes) &&
           regions_[index + 1].base <= *last) {
      ++index;
    }
    const bool continues = *last <= *regions_[index].base.plus(regions_[index].bytes - 1);
    return unexpected(translate_error(continues ? TranslateErrc::CrossesRegion : TranslateErrc::Unmapped, gpa, bytes,
                                      continues ? "crosses into another region" : "touches a gap in guest RAM"));
  }
  if (!allows(region, access)) {
    return unexpected(translate_error(TranslateErrc::ReadOnly, gpa, bytes, "the device may not write a read-only region"));
  }
  return HostSpan{region.host + offset, bytes, *first_region};
}

Result<std::size_t, TranslateError> GuestMemory::split(GuestAddress gpa, std::uint64_t bytes, DeviceAccess access,
                                                       std::span<HostSpan> out) const {
  if (bytes == 0) return unexpected(translate_error(TranslateErrc::Empty, gpa, bytes, "zero length"));
  if (!gpa.plus(bytes - 1)) return unexpected(translate_error(TranslateErrc::Overflow, gpa, bytes, "passes 2^64"));
  std::size_t pieces = 0;
  GuestAddress cursor = gpa;
  std::uint64_t left = bytes;
  while (left > 0) {
    const auto index = find_region(cursor);
    if (!index) return unexpected(translate_error(TranslateErrc::Unmapped, gpa, bytes, "touches a gap in guest RAM"));
    const GuestRegion& region = regions_[*index];
    if (!allows(region, access)) {
      return unexpected(translate_error(TranslateErrc::ReadOnly, gpa, bytes, "the device may not write a read-only region"));
    }
    if (pieces == out.size()) return unexpected(translate_error(TranslateErrc::TooManyPieces, gpa, bytes, "spans too many regions"));
    const std::uint64_t offset = *cursor.offset_from(region.base);
    const std::uint64_t take = std::min(left, region.bytes - offset);
    out[pieces++] = HostSpan{region.host + offset, take, *index};
    left -= take;
    if (left > 0) cursor = *cursor.plus(take);  // inside [gpa, gpa + bytes), checked above
  }
  return pieces;
}

std::vector<BufferRegion> GuestMemory::buffer_regions() const {
  std::vector<BufferRegion> out;
  for (const GuestRegion& r : regions_) {
    if (!r.read_only) out.push_back(BufferRegion{r.host, static_cast<std::size_t>(r.bytes)});
  }
  return out;
}

void GuestMemory::set_buffer_table(BufferTable table) {
  buffer_region_to_region_.clear();
  for (std::size_t i = 0; i < regions_.size(); ++i) {
    if (!regions_[i].read_only) buffer_region_to_region_.push_back(i);
  }
  buffer_table_ = std::move(table);
  buffer_windows_.clear();
  for (const BufferPiece& piece : buffer_table_->pieces()) {
    const GuestRegion& region = regions_.at(buffer_region_to_region_.at(piece.region));
    buffer_windows_.push_back(BufferWindow{*region.base.plus(piece.region_offset), piece.len,
                                           region.host + piece.region_offset, piece.index});
  }
  std::sort(buffer_windows_.begin(), buffer_windows_.end(),
            [](const BufferWindow& a, const BufferWindow& b) { return a.base < b.base; });
  buffer_window_bases_.clear();
  for (const BufferWindow& w : buffer_windows_) buffer_window_bases_.push_back(w.base.value());
}

GuestAddress GuestMemory::piece_base(const BufferPiece& piece) const {
  const GuestRegion& region = regions_.at(buffer_region_to_region_.at(piece.region));
  return *region.base.plus(piece.region_offset);  // inside the region, validated at create()
}

Result<BufferSpan, TranslateError> GuestMemory::buffer_for(GuestAddress gpa, std::uint64_t bytes,
                                                           DeviceAccess access) const {
  // The hot path of the mediator: one branch-free binary search over the windows' bases (a
  // dense array: 1024 windows are 8 KiB), then one containment check. Windows are writable
  // memory only, so `access` needs no check when one is found.
  const std::size_t count = buffer_window_bases_.size();
  if (bytes != 0 && count != 0 && gpa.value() >= buffer_window_bases_[0]) {
    const std::uint64_t* first = buffer_window_bases_.data();
    for (std::size_t len = count; len > 1;) {
      const std::size_t half = len / 2;
      first = first[half] <= gpa.value() ? first + half : first;  // the last base <= gpa
      len -= half;
    }
    const BufferWindow& w = buffer_windows_[static_cast<std::size_t>(first - buffer_window_bases_.data())];
    const std::uint64_t offset = gpa.value() - w.base.value();  // w.base <= gpa by the search
    if (offset < w.bytes && bytes <= w.bytes - offset) return BufferSpan{w.index, w.host + offset};
  }
  // Refused: say why, precisely, off the hot path.
  auto span = translate(gpa, bytes, access);
  if (!span) return unexpected(std::move(span).error());
  if (!buffer_table_) return unexpected(translate_error(TranslateErrc::Unmapped, gpa, bytes, "no fixed buffers are registered"));
  if (regions_[span->region].read_only) {
    return unexpected(translate_error(TranslateErrc::ReadOnly, gpa, bytes, "read-only regions are never fixed buffers"));
  }
  return unexpected(translate_error(TranslateErrc::CrossesRegion, gpa, bytes, "crosses a fixed-buffer boundary"));
}

}  // namespace rf
