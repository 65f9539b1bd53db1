// The C API's guest memory: rf_memory over rf::GuestMemory (created or adopted).
#include <vector>

#include "capi/capi_internal.h"

namespace rf::capi {
namespace {

constexpr std::uint32_t kKnownRegionFlags = RF_REGION_READ_ONLY;
// Far more regions than any VMM's memory map has; bounds what one call allocates.
constexpr std::size_t kMaxRegions = 4096;

// The caller's region array, checked field by field. `adopting`: each needs its host address.
rf_status read_regions(const char* function, const rf_region* regions, std::size_t count, bool adopting,
                       std::vector<BorrowedRegion>& out) {
  if (regions == nullptr || count == 0) return invalid_argument(function, "no regions (regions is NULL or count is 0)");
  if (count > kMaxRegions) {
    return invalid_argument(function, fmt::format("{} regions; at most {}", count, kMaxRegions));
  }
  out.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    const rf_region& r = regions[i];
    if ((r.flags & ~kKnownRegionFlags) != 0 || r.reserved != 0 || r.memfd_offset != 0) {
      return invalid_argument(function, fmt::format("region {}: unknown flags {:#x}, or reserved or memfd_offset not zero",
                                                    i, r.flags & ~kKnownRegionFlags));
    }
    if (adopting == (r.host == nullptr)) {
      return invalid_argument(function, fmt::format("region {}: host must be {}", i,
                                                    adopting ? "the VMM's mapping of the region" : "NULL"));
    }
    out.push_back(BorrowedRegion{RegionLayout{GuestAddress{r.gpa}, r.size, (r.flags & RF_REGION_READ_ONLY) != 0},
                                 static_cast<std::byte*>(r.host)});
  }
  return RF_OK;
}

rf_status publish(Result<GuestMemoryMap, GuestMemoryError> memory, rf_memory** out) {
  if (!memory) return fail_with(memory.error());
  *out = new rf_memory(std::move(*memory));
  return RF_OK;
}

}  // namespace
}  // namespace rf::capi

using namespace rf;
using namespace rf::capi;

extern "C" {

rf_status rf_memory_create(const rf_region* regions, size_t count, rf_memory_backing backing, rf_memory** out) {
  const char* const fn = __func__;
  return guarded(fn, [&] {
    if (out == nullptr) return invalid_argument(fn, "out is NULL");
    if (backing != RF_MEMORY_MEMFD && backing != RF_MEMORY_ANONYMOUS) {
      return invalid_argument(fn, "backing must be RF_MEMORY_MEMFD or RF_MEMORY_ANONYMOUS "
                                        "(for the VMM's own mappings, call rf_memory_adopt)");
    }
    std::vector<BorrowedRegion> checked;
    if (const rf_status s = read_regions(fn, regions, count, false, checked); s != RF_OK) return s;
    std::vector<RegionLayout> layout;
    layout.reserve(checked.size());
    for (const BorrowedRegion& r : checked) layout.push_back(r.layout);
    return publish(GuestMemoryBuilder::create(layout, backing == RF_MEMORY_MEMFD ? MemoryBacking::Memfd : MemoryBacking::Anonymous),
                   out);
  });
}

rf_status rf_memory_adopt(const rf_region* regions, size_t count, rf_memory** out) {
  const char* const fn = __func__;
  return guarded(fn, [&] {
    if (out == nullptr) return invalid_argument(fn, "out is NULL");
    std::vector<BorrowedRegion> checked;
    if (const rf_status s = read_regions(fn, regions, count, true, checked); s != RF_OK) return s;
    return publish(GuestMemoryBuilder::borrow(checked), out);
  });
}

size_t rf_memory_region_count(const rf_memory* memory) { return memory == nullptr ? 0 : memory->memory().regions().size(); }

rf_status rf_memory_region(const rf_memory* memory, size_t index, rf_region* out) {
  const char* const fn = __func__;
  return guarded(fn, [&] {
    if (memory == nullptr || out == nullptr) return invalid_argument(fn, "memory or out is NULL");
    const auto regions = memory->memory().regions();
    if (index >= regions.size()) {
      return invalid_argument(fn, fmt::format("index {} is past the last region ({} regions)", index, regions.size()));
    }
    const GuestRegion& r = regions[index];
    *out = rf_region{r.base.value(), r.bytes, r.read_only ? RF_REGION_READ_ONLY : 0u, 0, r.host,
                     memory->memory().backing() == MemoryBacking::Memfd ? r.memfd_offset : 0};
    return RF_OK;
  });
}

rf_memory_backing rf_memory_backing_of(const rf_memory* memory) {
  if (memory == nullptr) return static_cast<rf_memory_backing>(0);
  switch (memory->memory().backing()) {
    case MemoryBacking::Memfd: return RF_MEMORY_MEMFD;
    case MemoryBacking::Anonymous: return RF_MEMORY_ANONYMOUS;
    case MemoryBacking::Borrowed: return RF_MEMORY_ADOPTED;
  }
  return static_cast<rf_memory_backing>(0);
}

int rf_memory_memfd(const rf_memory* memory) { return memory == nullptr ? -1 : memory->memory().memfd(); }

rf_status rf_memory_destroy(rf_memory* memory) {
  const char* const fn = __func__;
  return guarded(fn, [&] {
    if (memory == nullptr) return RF_OK;
    const std::size_t devices = memory->devices.load(std::memory_order_acquire);
    if (devices != 0) {
      return fail(RF_E_BUSY, 0, fmt::format("rf_memory_destroy: {} device(s) still use this memory; "
                                            "rf_device_destroy them first", devices));
    }
    delete memory;
    return RF_OK;
  });
}

}  // extern "C"
