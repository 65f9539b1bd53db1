// SplitQueue: one split virtqueue in guest RAM, seen from the device, under the project's trust
// rules. Everything in it but the used ring's entries is GUEST-CONTROLLED.
//
//   - The queue's three parts are translated once, when it is created, each inside one region of
//     guest RAM with the right access (the used ring writable) and the spec's alignment.
//   - The avail index is loaded once per round (load_avail_idx) and checked by the caller against
//     its own last_avail (at most `size` ahead, mod 2^16); the device keeps its own avail and used
//     positions and never reads them back.
//   - A descriptor chain is copied descriptor by descriptor, each once, into the caller's private
//     array (read_chain): the head and every `next` are bounds-checked, a chain (direct and
//     indirect together) longer than the queue is refused, which is how a loop is caught, an
//     indirect table must be negotiated, non-empty, a whole number of descriptors, no longer than
//     the queue, inside one region, not nested and not followed by NEXT, and device-writable
//     buffers must all come after the device-readable ones. Addresses in the chain are not
//     translated here: the request parser translates each buffer with the access it needs.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "memory/guest_memory.h"
#include "util/result.h"
#include "virtio/virtio_spec.h"

namespace rf::virtio {

struct SplitQueueAddresses {
  GuestAddress desc;
  GuestAddress avail;
  GuestAddress used;
  std::uint32_t size = 0;  // a power of two, at most kMaxQueueSize
};

enum class QueueErrc {
  BadSize,         // not a power of two in 1..32768
  BadAlignment,    // desc not 16-aligned, avail not 2-aligned, used not 4-aligned
  Unmapped,        // a part of the queue is not inside one region (or the used ring is read-only)
  HeadOutOfRange,  // an avail entry or a `next` names no descriptor
  ChainTooLong,    // more descriptors than the queue has: a loop, or a driver bug
  IndirectNotNegotiated,
  IndirectNested,
  IndirectWithNext,
  IndirectBadLength,  // empty, not a multiple of 16, or longer than the queue
  IndirectUnmapped,   // the table is not inside one region of guest RAM
  ReadableAfterWritable,
};
std::string_view queue_errc_text(QueueErrc code);

struct QueueError {
  QueueErrc code = QueueErrc::BadSize;
  std::uint64_t value = 0;  // the offending index, address or length
};

// One buffer of a chain, as the guest described it (not yet translated).
struct ChainSegment {
  GuestAddress gpa;
  std::uint32_t len = 0;
  bool device_writes = false;  // VIRTQ_DESC_F_WRITE: the device writes it (the guest reads it)
};

class SplitQueue {
 public:
  // `memory` must outlive the queue (the caller holds its map).
  static Result<SplitQueue, QueueError> create(const GuestMemory& memory, const SplitQueueAddresses& addresses,
                                               bool indirect_negotiated);

  std::uint32_t size() const { return size_; }

  // GUEST-CONTROLLED: one acquire load each.
  std::uint16_t load_avail_idx() const;
  std::uint16_t load_avail_flags() const;
  std::uint16_t load_used_event() const;  // avail->ring[size]: only for EVENT_IDX
  // GUEST-CONTROLLED: the used ring's index as guest RAM holds it now. Read only when a queue
  // starts over a record of requests in flight (inflight_split.h); the device never reads back its
  // own index otherwise.
  std::uint16_t load_used_idx() const;
  // GUEST-CONTROLLED: the head the guest put in avail slot `position % size`.
  std::uint16_t load_avail_entry(std::uint16_t position) const;

  // Copies the chain starting at `head` into `out` (cleared first), each descriptor once; the
  // zero-length ones are dropped. Fails as the header comment says.
  Result<void, QueueError> read_chain(std::uint16_t head, std::vector<ChainSegment>& out) const;

  // The device's side: entries and indices it owns.
  void write_used(std::uint16_t position, std::uint32_t id, std::uint32_t len);
  void publish_used_idx(std::uint16_t idx);  // release: the entries before it are visible first
  void store_avail_event(std::uint16_t idx);  // used->ring[size]: only for EVENT_IDX

 private:
  SplitQueue() = default;
  Descriptor copy_descriptor(const std::byte* table, std::uint32_t index) const;
  Result<void, QueueError> append(const Descriptor& d, bool& seen_writable, std::vector<ChainSegment>& out) const;
  Result<void, QueueError> read_indirect(const Descriptor& d, std::uint32_t& budget, bool& seen_writable,
                                         std::vector<ChainSegment>& out) const;

  const GuestMemory* memory_ = nullptr;
  std::byte* desc_ = nullptr;
  std::byte* avail_ = nullptr;
  std::byte* used_ = nullptr;
  std::uint32_t size_ = 0;
  bool indirect_ = false;
};

}  // namespace rf::virtio
