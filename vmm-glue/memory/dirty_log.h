// DirtyLog: the pages of guest RAM a device wrote, for a live migration: one bit per 4 KiB page of
// guest-physical address, bit (page % 8) of byte (page / 8), in memory the VMM shares with the
// device and reads (and clears) while it copies guest RAM to the destination (vhost-user's
// VHOST_F_LOG_ALL and SET_LOG_BASE; QEMU's VHOST_LOG_PAGE).
//
// A device marks a page after it has written it and before the guest can know (the used entry,
// the CQE): the VMM then sends the page again, after the write, in some later pass or in the last
// one, which it makes after the device has stopped.
//
// Marks are atomic ORs, since the VMM clears bits at the same time. A range past the log's end (a
// guest address the log was not sized for) is marked as far as the log reaches and counted: the
// VMM sizes the log for all of guest RAM, so a count that is not 0 is a bug to report.
#pragma once

#include <atomic>
#include <cstdint>

#include "memory/guest_address.h"
#include "util/mmap_region.h"

namespace rf {

class DirtyLog {
 public:
  static constexpr std::uint64_t kPageBytes = 4096;

  explicit DirtyLog(MmapRegion bits) : bits_(std::move(bits)) {}
  DirtyLog(const DirtyLog&) = delete;
  DirtyLog& operator=(const DirtyLog&) = delete;

  // Marks every page [gpa, gpa + bytes) touches (nothing for 0 bytes); returns how many it marked.
  std::uint64_t mark(GuestAddress gpa, std::uint64_t bytes);
  // Guest pages the log covers.
  std::uint64_t pages() const { return bits_.size() * 8; }
  // Marks asked for (a range counts once) that reached past the log's end.
  std::uint64_t out_of_range() const { return out_of_range_.load(std::memory_order_relaxed); }

 private:
  MmapRegion bits_;
  std::atomic<std::uint64_t> out_of_range_{0};
};

}  // namespace rf
