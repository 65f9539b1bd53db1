#include "mediated/guest_ring.h"

#include <array>
#include <atomic>
#include <bit>
#include <cstring>

#include "util/checked_math.h"
#include "util/mmap_region.h"

namespace rf {

static_assert(std::endian::native == std::endian::little, "write_cqe packs res into a little-endian word");

GuestRingLayout guest_ring_layout(std::uint32_t sq_entries, std::uint32_t cq_entries) {
  GuestRingLayout layout;
  layout.sq_entries = sq_entries;
  layout.cq_entries = cq_entries;
  const std::uint64_t page = page_size();
  layout.sqes = page;
  layout.cqes = layout.sqes + std::uint64_t{sq_entries} * abi::kSqeBytes;
  // Entries are at most 2^15 and 2^16 (io_uring's limits, checked by the device): no overflow.
  layout.bytes = *checked_align_up<std::uint64_t>(layout.cqes + std::uint64_t{cq_entries} * abi::kCqeBytes, page);
  return layout;
}

GuestRing::GuestRing(std::byte* area, const GuestRingLayout& layout) : area_(area), layout_(layout) {}

std::uint32_t* GuestRing::field(std::uint64_t offset) const {
  // SAFETY: offsets are the layout's constants, 64-byte aligned inside the ring area's first page.
  return reinterpret_cast<std::uint32_t*>(area_ + offset);
}

std::uint32_t GuestRing::load_sq_tail() const {
  return std::atomic_ref<std::uint32_t>(*field(GuestRingLayout::kSqTail)).load(std::memory_order_acquire);
}

std::uint32_t GuestRing::load_cq_head() const {
  return std::atomic_ref<std::uint32_t>(*field(GuestRingLayout::kCqHead)).load(std::memory_order_acquire);
}

std::uint32_t GuestRing::load_cq_flags() const {
  return std::atomic_ref<std::uint32_t>(*field(GuestRingLayout::kCqFlags)).load(std::memory_order_relaxed);
}

abi::GuestSqe GuestRing::copy_sqe(std::uint32_t index) const {
  const std::uint32_t slot = index & (layout_.sq_entries - 1);
  // SAFETY: the slot lies inside the SQE array (slot < sq_entries); SQEs are 64 bytes at a
  // page-aligned base, so every 8-byte word is aligned for atomic_ref.
  auto* words = reinterpret_cast<std::uint64_t*>(area_ + layout_.sqes + std::uint64_t{slot} * abi::kSqeBytes);
  std::array<std::uint64_t, abi::kSqeBytes / 8> copy{};
  for (std::size_t i = 0; i < copy.size(); ++i) {
    copy[i] = std::atomic_ref<std::uint64_t>(words[i]).load(std::memory_order_relaxed);
  }
  return std::bit_cast<abi::GuestSqe>(copy);
}

void GuestRing::publish_sq_head(std::uint32_t head) {
  std::atomic_ref<std::uint32_t>(*field(GuestRingLayout::kSqHead)).store(head, std::memory_order_release);
}

void GuestRing::store_sq_flags(std::uint32_t flags) {
  std::atomic_ref<std::uint32_t>(*field(GuestRingLayout::kSqFlags)).store(flags, std::memory_order_relaxed);
}

void GuestRing::write_cqe(std::uint32_t index, std::uint64_t user_data, std::int32_t res) {
  const std::uint32_t slot = index & (layout_.cq_entries - 1);
  // SAFETY: the slot lies inside the CQE array; CQEs are 16 bytes at an 8-aligned offset. The
  // second word holds res (low half) and flags (high half, always 0), little-endian as on the
  // hosts io_uring runs on.
  auto* words = reinterpret_cast<std::uint64_t*>(area_ + layout_.cqes + std::uint64_t{slot} * abi::kCqeBytes);
  std::atomic_ref<std::uint64_t>(words[0]).store(user_data, std::memory_order_relaxed);
  std::atomic_ref<std::uint64_t>(words[1]).store(static_cast<std::uint32_t>(res), std::memory_order_relaxed);
}

void GuestRing::publish_cq_tail(std::uint32_t tail) {
  std::atomic_ref<std::uint32_t>(*field(GuestRingLayout::kCqTail)).store(tail, std::memory_order_release);
}

}  // namespace rf
