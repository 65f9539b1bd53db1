// libFuzzer target: the guest-physical map and its translation (GuestMemory::validate_layout,
// translate, split, buffer_for), against a brute-force model written from the header's
// contract.
//
// Every address and length here stands for one a guest wrote into an SQE or a descriptor
// (GUEST-CONTROLLED in the mediator), so translation is the wall between guest RAM and the
// rest of the VMM. The model walks the regions one by one with 128-bit arithmetic; the code
// under test binary-searches with checked 64-bit arithmetic. They must agree on every layout
// and every span: valid or not, which error, which host byte, which fixed buffer. Host spans
// that come back are touched at both ends, so ASan catches one that leaves the mapping.
#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <vector>

#include "fuzz_check.h"
#include "memory/guest_memory_builder.h"
#include "util/mmap_region.h"

namespace {

using namespace rf;
using fuzz::u128;

// --- The model: the contract in guest_memory.h, the slow and obvious way. ---

bool model_layout_valid(const std::vector<RegionLayout>& layout, std::uint64_t page) {
  if (layout.empty()) return false;
  u128 previous_end = 0;
  for (const RegionLayout& r : layout) {
    const u128 end = u128{r.base.value()} + r.bytes;
    if (r.bytes == 0 || r.base.value() % page != 0 || r.bytes % page != 0) return false;
    if (end > u128{UINT64_MAX}) return false;  // base + size must not pass 2^64
    if (r.base.value() < previous_end) return false;
    previous_end = end;
  }
  return true;
}

// The region holding one byte, by linear scan.
std::optional<std::size_t> model_region_of(const std::vector<RegionLayout>& layout, u128 address) {
  for (std::size_t i = 0; i < layout.size(); ++i) {
    if (address >= layout[i].base.value() && address < u128{layout[i].base.value()} + layout[i].bytes) return i;
  }
  return std::nullopt;
}

// The regions [gpa, gpa + bytes) passes through in order, or nullopt if some byte is unmapped.
std::optional<std::vector<std::size_t>> model_regions_of_span(const std::vector<RegionLayout>& layout, u128 gpa,
                                                              u128 bytes) {
  std::vector<std::size_t> touched;
  for (u128 cursor = gpa; cursor < gpa + bytes;) {
    const auto i = model_region_of(layout, cursor);
    if (!i) return std::nullopt;
    touched.push_back(*i);
    cursor = u128{layout[*i].base.value()} + layout[*i].bytes;
  }
  return touched;
}

struct ModelTranslation {
  std::optional<TranslateErrc> error;
  std::size_t region = 0;
};

ModelTranslation model_translate(const std::vector<RegionLayout>& layout, std::uint64_t gpa, std::uint64_t bytes,
                                 DeviceAccess access) {
  if (bytes == 0) return {TranslateErrc::Empty};
  if (u128{gpa} + bytes - 1 > u128{UINT64_MAX}) return {TranslateErrc::Overflow};
  const auto touched = model_regions_of_span(layout, gpa, bytes);
  if (!touched) return {TranslateErrc::Unmapped};  // some byte is in no region
  if (touched->size() > 1) return {TranslateErrc::CrossesRegion};
  const RegionLayout& r = layout[touched->front()];
  if (r.read_only && access == DeviceAccess::WritesGuest) return {TranslateErrc::ReadOnly};
  return {std::nullopt, touched->front()};
}

// --- Building a layout from the input. ---

std::vector<RegionLayout> layout_from(fuzz::ByteReader& in, std::uint64_t page) {
  static constexpr std::array<std::uint64_t, 3> kStarts = {0, 0x10000, 0};
  const std::uint8_t start = in.byte() % 3;
  std::uint64_t cursor = start == 2 ? 0 - 16 * page : kStarts[start];  // the last case ends near 2^64
  std::vector<RegionLayout> layout(in.byte() % 5);  // 0..4 regions; none is a case too
  for (RegionLayout& r : layout) {
    const std::uint8_t kind = in.byte() % 8;
    if (kind == 0) {  // anything at all
      r.base = GuestAddress{in.take<std::uint64_t>()};
      r.bytes = in.take<std::uint64_t>();
    } else {
      // Adjacent (1, 4), one or two pages apart, or overlapping the previous region (7).
      r.base = GuestAddress{kind == 7 ? cursor - page : cursor + (kind % 3) * page};
      r.bytes = (1 + in.byte() % 4) * page;
      if (kind == 6) r.bytes += 1;  // not a page multiple
    }
    r.read_only = in.flag();
    cursor = r.base.value() + r.bytes;  // wraps for a region near 2^64: the next one is then refused
  }
  return layout;
}

// A span chosen near the interesting places: region edges, the gaps, 2^64.
std::pair<std::uint64_t, std::uint64_t> span_from(fuzz::ByteReader& in, const std::vector<RegionLayout>& layout,
                                                  std::uint64_t page) {
  const std::uint8_t kind = in.byte() % 4;
  if (kind == 0) return {in.take<std::uint64_t>(), in.take<std::uint64_t>()};
  const RegionLayout& r = layout[in.byte() % layout.size()];
  const auto delta = static_cast<std::int64_t>(in.take<std::int16_t>());  // a little before or after
  std::uint64_t gpa = (kind == 1 ? r.base.value() : r.base.value() + r.bytes) + static_cast<std::uint64_t>(delta);
  if (kind == 3) gpa = r.base.value() + in.below(static_cast<std::uint32_t>(std::min<std::uint64_t>(r.bytes, 1u << 30)));
  const std::uint64_t bytes = in.flag() ? in.below(static_cast<std::uint32_t>(3 * page)) : in.take<std::uint64_t>();
  return {gpa, bytes};
}

// Touch both ends of a returned span: a pointer outside the mapping faults or trips ASan.
void touch(const std::byte* host, std::uint64_t bytes) {
  const volatile std::byte* p = host;
  (void)p[0];
  (void)p[bytes - 1];
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::ByteReader in(data, size);
  const std::uint64_t page = page_size();
  const std::vector<RegionLayout> layout = layout_from(in, page);

  const bool model_valid = model_layout_valid(layout, page);
  RF_FUZZ_CHECK(GuestMemoryBuilder::validate_layout(layout).has_value() == model_valid,
                "validate_layout accepts exactly the layouts the contract allows");
  if (!model_valid) return 0;
  std::uint64_t total = 0;
  for (const RegionLayout& r : layout) total += r.bytes;
  if (total > 64 * page) return 0;  // regions near 2^64 were checked above; only small maps are built

  // Fixed buffers: the writable regions, cut into pieces of 1 to 4 pages so that piece
  // boundaries fall inside regions as 1 GiB boundaries do in big guests.
  const std::uint64_t piece = page * (1 + in.byte() % 4);
  auto built = GuestMemoryBuilder::create(layout, MemoryBacking::Anonymous, piece);
  RF_FUZZ_CHECK(built.has_value(), "a valid small layout is created");
  const GuestMemory* memory = built->get();
  const auto regions = memory->regions();
  RF_FUZZ_CHECK(regions.size() == layout.size(), "one region per layout entry");

  for (int query = 0; query < 32 && !in.empty(); ++query) {
    const auto [gpa, bytes] = span_from(in, layout, page);
    const DeviceAccess access = in.flag() ? DeviceAccess::WritesGuest : DeviceAccess::ReadsGuest;

    // translate()
    const ModelTranslation want = model_translate(layout, gpa, bytes, access);
    const auto got = memory->translate(GuestAddress{gpa}, bytes, access);
    RF_FUZZ_CHECK(got.has_value() == !want.error, "translate succeeds exactly when the model does");
    if (got) {
      const GuestRegion& r = regions[want.region];
      RF_FUZZ_CHECK(got->region == want.region && got->bytes == bytes, "translate names the right region");
      RF_FUZZ_CHECK(got->host == r.host + (gpa - r.base.value()), "translate returns the right host byte");
      touch(got->host, bytes);
    } else {
      RF_FUZZ_CHECK(got.error().code == *want.error, "translate gives the contract's error");
    }

    // split(): every byte mapped, one piece per region, ReadOnly before TooManyPieces.
    std::array<HostSpan, 4> pieces{};
    const std::size_t room = 1 + in.byte() % pieces.size();
    const auto split = memory->split(GuestAddress{gpa}, bytes, access, std::span(pieces.data(), room));
    std::optional<std::vector<std::size_t>> touched;
    if (bytes != 0 && u128{gpa} + bytes - 1 <= u128{UINT64_MAX}) touched = model_regions_of_span(layout, gpa, bytes);
    bool model_split_ok = touched.has_value();
    if (touched) {
      for (std::size_t i = 0; i < touched->size() && model_split_ok; ++i) {
        if (layout[(*touched)[i]].read_only && access == DeviceAccess::WritesGuest) model_split_ok = false;
        if (i >= room) model_split_ok = false;
      }
    }
    RF_FUZZ_CHECK(split.has_value() == model_split_ok, "split succeeds exactly when the model does");
    if (split) {
      RF_FUZZ_CHECK(*split == touched->size(), "split gives one piece per region");
      std::uint64_t covered = 0;
      for (std::size_t i = 0; i < *split; ++i) {
        const GuestRegion& r = regions[pieces[i].region];
        const std::uint64_t at = gpa + covered;  // where this piece starts in guest terms
        RF_FUZZ_CHECK(pieces[i].region == (*touched)[i], "pieces follow the span's regions in order");
        RF_FUZZ_CHECK(pieces[i].host == r.host + (at - r.base.value()), "each piece starts at its guest byte");
        RF_FUZZ_CHECK(pieces[i].bytes != 0 && at - r.base.value() + pieces[i].bytes <= r.bytes, "each piece stays in its region");
        touch(pieces[i].host, pieces[i].bytes);
        covered += pieces[i].bytes;
      }
      RF_FUZZ_CHECK(covered == bytes, "the pieces cover the span exactly");
    }

    // buffer_for(): inside one writable region and one piece of it, and the buffer index
    // counts pieces in region order.
    const auto buffer = memory->buffer_for(GuestAddress{gpa}, bytes, access);
    bool model_buffer_ok = !want.error;  // and then: writable, inside one piece
    std::size_t model_index = 0;
    if (model_buffer_ok) {
      const RegionLayout& r = layout[want.region];
      const std::uint64_t offset = gpa - r.base.value();
      model_buffer_ok = !r.read_only && offset / piece == (offset + bytes - 1) / piece;
      for (std::size_t i = 0; i < want.region; ++i) {
        if (!layout[i].read_only) model_index += (layout[i].bytes + piece - 1) / piece;
      }
      model_index += offset / piece;
    }
    RF_FUZZ_CHECK(buffer.has_value() == model_buffer_ok, "buffer_for succeeds exactly when the model does");
    if (buffer) {
      const GuestRegion& r = regions[want.region];
      RF_FUZZ_CHECK(buffer->host == r.host + (gpa - r.base.value()), "buffer_for returns the right host byte");
      RF_FUZZ_CHECK(buffer->index.value == model_index, "buffer_for names the fixed buffer that holds the span");
      touch(buffer->host, bytes);
    }
  }
  return 0;
}
