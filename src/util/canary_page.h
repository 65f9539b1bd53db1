// CanaryPage: one page of VMM memory outside any guest RAM, filled with a known byte. The
// security checks aim a guest's SQE at it: the SQE must be refused and the page must read back
// unchanged (the demo, `ringfence vmm` and the KVM tests).
#pragma once

#include <algorithm>
#include <cstdint>

#include "util/address.h"
#include "util/mmap_region.h"
#include "util/result.h"

namespace rf {

class CanaryPage {
 public:
  static constexpr std::byte kFill{0xc5};

  static Result<CanaryPage, MmapError> create() {
    auto page = MmapRegion::map_anonymous(page_size());
    if (!page) return unexpected(std::move(page).error());
    std::fill(page->bytes(), page->bytes() + page->size(), kFill);
    return CanaryPage(std::move(*page));
  }

  // The page's host address: what a passthrough SQE's `addr` would name.
  std::uint64_t address() const { return address_of(page_.data()); }
  bool intact() const {
    return std::all_of(page_.bytes(), page_.bytes() + page_.size(), [](std::byte b) { return b == kFill; });
  }

 private:
  explicit CanaryPage(MmapRegion page) : page_(std::move(page)) {}
  MmapRegion page_;
};

}  // namespace rf
