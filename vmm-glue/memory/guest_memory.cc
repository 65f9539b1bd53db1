#include "memory/guest_memory.h"

#include <algorithm>

#include <fmt/format.h>

namespace rf {

namespace {

Unexpected<TranslateError> refuse(TranslateErrc code, GuestAddress gpa, std::uint64_t bytes) {
  return Unexpected<TranslateError>(TranslateError{code, gpa, bytes});
}

bool allows(const GuestRegion& region, DeviceAccess access) {
  return !(region.read_only && access == DeviceAccess::WritesGuest);
}

}  // namespace

std::string_view translate_errc_text(TranslateErrc code) {
  switch (code) {
    case TranslateErrc::Empty: return "zero length";
    case TranslateErrc::Overflow: return "passes 2^64";
    case TranslateErrc::Unmapped: return "touches a gap in guest RAM or lies past its end";
    case TranslateErrc::CrossesRegion: return "crosses into another region";
    case TranslateErrc::ReadOnly: return "the device may not write a read-only region";
    case TranslateErrc::TooManyPieces: return "spans more regions than there is room for";
    case TranslateErrc::NotABuffer: return "read-only regions are never fixed buffers";
    case TranslateErrc::CrossesBuffer: return "crosses a fixed-buffer boundary";
  }
  return "refused";
}

std::string TranslateError::describe() const {
  return fmt::format("guest range {:#x}+{:#x}: {}", gpa.value(), bytes, translate_errc_text(code));
}

Result<void, GuestMemoryError> GuestMemory::plan_buffers(std::size_t max_piece_bytes) {
  std::vector<BufferRegion> writable;
  std::vector<std::size_t> region_of;  // writable[i] is regions_[region_of[i]]
  for (std::size_t i = 0; i < regions_.size(); ++i) {
    if (regions_[i].read_only) continue;
    writable.push_back(BufferRegion{regions_[i].host, static_cast<std::size_t>(regions_[i].bytes)});
    region_of.push_back(i);
  }
  if (writable.empty()) return {};  // nothing a device could register; devices refuse such a map
  auto plan = BufferTable::plan(writable, max_piece_bytes);
  if (!plan) return unexpected(GuestMemoryError{GuestMemoryErrc::InvalidLayout, 0, "guest RAM's fixed buffers: " + plan.error().message});
  buffer_plan_ = std::move(*plan);
  for (const BufferPiece& piece : buffer_plan_.pieces()) {
    const GuestRegion& region = regions_[region_of[piece.region]];
    // The piece lies inside its region, whose end validate_layout() checked.
    buffer_windows_.push_back(
        BufferWindow{region.base.unchecked_add(piece.region_offset), piece.len, region.host + piece.region_offset, piece.index});
  }
  std::sort(buffer_windows_.begin(), buffer_windows_.end(),
            [](const BufferWindow& a, const BufferWindow& b) { return a.base < b.base; });
  for (const BufferWindow& w : buffer_windows_) buffer_window_bases_.push_back(w.base.value());
  return {};
}

std::optional<std::size_t> GuestMemory::find_region(GuestAddress gpa) const {
  // The last region whose base is <= gpa, then check that gpa is inside it.
  auto it = std::upper_bound(regions_.begin(), regions_.end(), gpa,
                             [](GuestAddress a, const GuestRegion& r) { return a < r.base; });
  if (it == regions_.begin()) return std::nullopt;
  --it;
  const std::uint64_t offset = gpa.unchecked_offset_from(it->base);  // it->base <= gpa by the search
  if (offset >= it->bytes) return std::nullopt;
  return static_cast<std::size_t>(it - regions_.begin());
}

Result<HostSpan, TranslateError> GuestMemory::translate(GuestAddress gpa, std::uint64_t bytes,
                                                        DeviceAccess access) const {
  if (bytes == 0) return refuse(TranslateErrc::Empty, gpa, bytes);
  const auto last = gpa.checked_add(bytes - 1);
  if (!last) return refuse(TranslateErrc::Overflow, gpa, bytes);
  const auto first_region = find_region(gpa);
  if (!first_region) return refuse(TranslateErrc::Unmapped, gpa, bytes);
  const GuestRegion& region = regions_[*first_region];
  const std::uint64_t offset = gpa.unchecked_offset_from(region.base);  // find_region: inside the region
  if (bytes > region.bytes - offset) {  // offset < region.bytes, so no underflow
    // CrossesRegion only if every byte is mapped (split() would succeed); a gap anywhere in the
    // span is Unmapped. Adjacent regions are contiguous in the sorted list, so walk them. Region
    // ends were checked by validate_layout(), so the unchecked moves stay below 2^64.
    std::size_t index = *first_region;
    while (index + 1 < regions_.size() &&
           regions_[index + 1].base == regions_[index].base.unchecked_add(regions_[index].bytes) &&
           regions_[index + 1].base <= *last) {
      ++index;
    }
    const bool continues = *last <= regions_[index].base.unchecked_add(regions_[index].bytes - 1);
    return refuse(continues ? TranslateErrc::CrossesRegion : TranslateErrc::Unmapped, gpa, bytes);
  }
  if (!allows(region, access)) return refuse(TranslateErrc::ReadOnly, gpa, bytes);
  return HostSpan{region.host + offset, bytes, *first_region};
}

Result<std::size_t, TranslateError> GuestMemory::split(GuestAddress gpa, std::uint64_t bytes, DeviceAccess access,
                                                       std::span<HostSpan> out) const {
  if (bytes == 0) return refuse(TranslateErrc::Empty, gpa, bytes);
  if (!gpa.checked_add(bytes - 1)) return refuse(TranslateErrc::Overflow, gpa, bytes);
  std::size_t pieces = 0;
  GuestAddress cursor = gpa;
  std::uint64_t left = bytes;
  while (left > 0) {
    const auto index = find_region(cursor);
    if (!index) return refuse(TranslateErrc::Unmapped, gpa, bytes);
    const GuestRegion& region = regions_[*index];
    if (!allows(region, access)) return refuse(TranslateErrc::ReadOnly, gpa, bytes);
    if (pieces == out.size()) return refuse(TranslateErrc::TooManyPieces, gpa, bytes);
    const std::uint64_t offset = cursor.unchecked_offset_from(region.base);  // find_region: inside the region
    const std::uint64_t take = std::min(left, region.bytes - offset);
    out[pieces++] = HostSpan{region.host + offset, take, *index};
    left -= take;
    if (left > 0) cursor = cursor.unchecked_add(take);  // inside [gpa, gpa + bytes), checked above
  }
  return pieces;
}

const BufferWindow* GuestMemory::buffer_window_at(GuestAddress gpa) const {
  auto after = std::upper_bound(buffer_window_bases_.begin(), buffer_window_bases_.end(), gpa.value());
  if (after == buffer_window_bases_.begin()) return nullptr;
  const BufferWindow& w = buffer_windows_[static_cast<std::size_t>(after - buffer_window_bases_.begin()) - 1];
  // w.base <= gpa by the search.
  return gpa.unchecked_offset_from(w.base) < w.bytes ? &w : nullptr;
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
    const std::uint64_t offset = gpa.unchecked_offset_from(w.base);  // w.base <= gpa by the search
    if (offset < w.bytes && bytes <= w.bytes - offset) return BufferSpan{w.index, w.host + offset};
  }
  // Refused: say why, precisely, without allocating (a guest decides how often this runs).
  auto span = translate(gpa, bytes, access);
  if (!span) return unexpected(span.error());
  if (regions_[span->region].read_only) return refuse(TranslateErrc::NotABuffer, gpa, bytes);
  return refuse(TranslateErrc::CrossesBuffer, gpa, bytes);
}

}  // namespace rf
