// GuestRing: the mediated device's rings, in guest RAM, in io_uring's layout (so the reference
// guest driver is the same code in both modes), seen from the VMM.
//
// Every field the guest can write is GUEST-CONTROLLED: the VMM reads the SQ tail, the CQ head
// and the CQ flags with single atomic loads, copies each SQE once into private memory, and never
// reads a field it owns (SQ head, SQ flags, CQ tail) back from guest memory: it keeps those
// privately and only publishes them.
#pragma once

#include <cstddef>
#include <cstdint>

#include "abi/ring_entries.h"

namespace rf {

// Byte offsets inside the ring area (which follows the descriptor in the device window). Each
// index gets its own cache line; the SQE array starts on the next page, the CQEs follow it.
struct GuestRingLayout {
  static constexpr std::uint64_t kSqHead = 0, kSqTail = 64, kSqFlags = 128, kSqDropped = 192;
  static constexpr std::uint64_t kCqHead = 256, kCqTail = 320, kCqFlags = 384, kCqOverflow = 448;
  std::uint32_t sq_entries = 0;
  std::uint32_t cq_entries = 0;
  std::uint64_t sqes = 0;   // offset of the SQE array
  std::uint64_t cqes = 0;   // offset of the CQE array
  std::uint64_t bytes = 0;  // the whole ring area, page-rounded
};

// `sq_entries` and `cq_entries` are powers of two (the caller checks), cq >= sq.
GuestRingLayout guest_ring_layout(std::uint32_t sq_entries, std::uint32_t cq_entries);

class GuestRing {
 public:
  GuestRing() = default;
  // `area` is the host address of the ring area: page-aligned guest RAM that stays mapped for
  // the ring's lifetime (the device's guest memory outlives the device).
  GuestRing(std::byte* area, const GuestRingLayout& layout);

  std::uint32_t sq_entries() const { return layout_.sq_entries; }
  std::uint32_t cq_entries() const { return layout_.cq_entries; }

  // GUEST-CONTROLLED: one load each.
  std::uint32_t load_sq_tail() const;
  std::uint32_t load_cq_head() const;
  std::uint32_t load_cq_flags() const;
  // GUEST-CONTROLLED: copies SQE `index & mask` once, with one atomic load per 8 bytes; the
  // caller validates and submits only the copy.
  abi::GuestSqe copy_sqe(std::uint32_t index) const;

  // Fields the VMM owns; the guest may scribble on them, which only confuses the guest.
  void publish_sq_head(std::uint32_t head);
  void store_sq_flags(std::uint32_t flags);
  void write_cqe(std::uint32_t index, std::uint64_t user_data, std::int32_t res);
  void publish_cq_tail(std::uint32_t tail);

 private:
  std::uint32_t* field(std::uint64_t offset) const;

  std::byte* area_ = nullptr;
  GuestRingLayout layout_{};
};

}  // namespace rf
