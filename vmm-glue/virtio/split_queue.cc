#include "virtio/split_queue.h"

#include <atomic>
#include <cstring>

#include "util/address.h"
#include "util/checked_math.h"

namespace rf::virtio {

std::string_view queue_errc_text(QueueErrc code) {
  switch (code) {
    case QueueErrc::BadSize: return "the queue size is not a power of two from 1 to 32768";
    case QueueErrc::BadAlignment: return "a queue part is misaligned (desc 16, avail 2, used 4 bytes)";
    case QueueErrc::Unmapped: return "a queue part is not inside one region of guest RAM (or the used ring is read-only)";
    case QueueErrc::HeadOutOfRange: return "a descriptor index is past the end of its table";
    case QueueErrc::ChainTooLong: return "a descriptor chain is longer than the queue (a loop)";
    case QueueErrc::IndirectNotNegotiated: return "an indirect descriptor, but VIRTIO_RING_F_INDIRECT_DESC was not negotiated";
    case QueueErrc::IndirectNested: return "an indirect table inside an indirect table";
    case QueueErrc::IndirectWithNext: return "an indirect descriptor that also has NEXT";
    case QueueErrc::IndirectBadLength: return "an indirect table that is empty, not a whole number of descriptors, or longer than the queue";
    case QueueErrc::IndirectUnmapped: return "an indirect table outside guest RAM";
    case QueueErrc::ReadableAfterWritable: return "a device-readable buffer after a device-writable one";
  }
  return "unknown queue error";
}

namespace {

QueueError fail(QueueErrc code, std::uint64_t value = 0) { return QueueError{code, value}; }

// Translates one part of the queue; nullptr when it is not inside one region with `access`.
std::byte* map_part(const GuestMemory& memory, GuestAddress gpa, std::uint64_t bytes, DeviceAccess access) {
  auto span = memory.translate(gpa, bytes, access);
  return span ? span->host : nullptr;
}

// SAFETY (for the three accessors below): create() checked that each part lies inside one
// mapped region and is aligned for the widest word read from it; every index is reduced modulo
// the queue size (or is the fixed slot just past the ring), inside the bytes translated.
std::uint16_t load16(std::byte* p, std::memory_order order) {
  // SAFETY: see above.
  return std::atomic_ref<std::uint16_t>(*reinterpret_cast<std::uint16_t*>(p)).load(order);
}
void store16(std::byte* p, std::uint16_t v, std::memory_order order) {
  // SAFETY: see above.
  std::atomic_ref<std::uint16_t>(*reinterpret_cast<std::uint16_t*>(p)).store(v, order);
}
void store32(std::byte* p, std::uint32_t v) {
  // SAFETY: see above (the used ring is 4-aligned and its entries are 8 bytes).
  std::atomic_ref<std::uint32_t>(*reinterpret_cast<std::uint32_t*>(p)).store(v, std::memory_order_relaxed);
}

}  // namespace

Result<SplitQueue, QueueError> SplitQueue::create(const GuestMemory& memory, const SplitQueueAddresses& addresses,
                                                  bool indirect_negotiated) {
  const std::uint32_t size = addresses.size;
  if (!is_power_of_two(size) || size > kMaxQueueSize) return unexpected(fail(QueueErrc::BadSize, size));
  if (addresses.desc.value() % 16 != 0) return unexpected(fail(QueueErrc::BadAlignment, addresses.desc.value()));
  if (addresses.avail.value() % 2 != 0) return unexpected(fail(QueueErrc::BadAlignment, addresses.avail.value()));
  if (addresses.used.value() % 4 != 0) return unexpected(fail(QueueErrc::BadAlignment, addresses.used.value()));
  SplitQueue q;
  q.memory_ = &memory;
  q.size_ = size;
  q.indirect_ = indirect_negotiated;
  q.desc_ = map_part(memory, addresses.desc, descriptor_table_bytes(size), DeviceAccess::ReadsGuest);
  if (q.desc_ == nullptr) return unexpected(fail(QueueErrc::Unmapped, addresses.desc.value()));
  q.avail_ = map_part(memory, addresses.avail, avail_ring_bytes(size), DeviceAccess::ReadsGuest);
  if (q.avail_ == nullptr) return unexpected(fail(QueueErrc::Unmapped, addresses.avail.value()));
  q.used_ = map_part(memory, addresses.used, used_ring_bytes(size), DeviceAccess::WritesGuest);
  if (q.used_ == nullptr) return unexpected(fail(QueueErrc::Unmapped, addresses.used.value()));
  return q;
}

// GUEST-CONTROLLED: avail->flags, avail->idx, avail->ring[], used_event; the caller checks the
// index against its own position and every head against the queue size (read_chain).
std::uint16_t SplitQueue::load_avail_flags() const { return load16(avail_, std::memory_order_relaxed); }
std::uint16_t SplitQueue::load_avail_idx() const { return load16(avail_ + 2, std::memory_order_acquire); }
std::uint16_t SplitQueue::load_avail_entry(std::uint16_t position) const {
  return load16(avail_ + 4 + 2 * std::size_t{position % size_}, std::memory_order_relaxed);
}
std::uint16_t SplitQueue::load_used_idx() const { return load16(used_ + 2, std::memory_order_acquire); }
std::uint16_t SplitQueue::load_used_event() const {
  return load16(avail_ + 4 + 2 * std::size_t{size_}, std::memory_order_relaxed);
}

void SplitQueue::write_used(std::uint16_t position, std::uint32_t id, std::uint32_t len) {
  std::byte* entry = used_ + 4 + 8 * std::size_t{position % size_};
  store32(entry, id);
  store32(entry + 4, len);
}
void SplitQueue::publish_used_idx(std::uint16_t idx) { store16(used_ + 2, idx, std::memory_order_release); }
void SplitQueue::store_avail_event(std::uint16_t idx) {
  store16(used_ + 4 + 8 * std::size_t{size_}, idx, std::memory_order_relaxed);
}

// GUEST-CONTROLLED: the whole descriptor; copied once, validated by the caller.
Descriptor SplitQueue::copy_descriptor(const std::byte* table, std::uint32_t index) const {
  Descriptor d;
  const std::byte* src = table + std::size_t{16} * index;
  if (address_of(src) % 8 == 0) {
    // SAFETY: the caller checked index < the table's entries, and the table lies in one mapped
    // region; 8-aligned, so each half can be loaded atomically (one read of each word).
    auto* words = reinterpret_cast<std::uint64_t*>(const_cast<std::byte*>(src));
    const std::uint64_t w[2] = {std::atomic_ref<std::uint64_t>(words[0]).load(std::memory_order_relaxed),
                                std::atomic_ref<std::uint64_t>(words[1]).load(std::memory_order_relaxed)};
    std::memcpy(&d, w, sizeof d);
  } else {
    std::memcpy(&d, src, sizeof d);  // an indirect table the guest placed unaligned (the spec allows it)
  }
  return d;
}

Result<void, QueueError> SplitQueue::append(const Descriptor& d, bool& seen_writable, std::vector<ChainSegment>& out) const {
  const bool writes = (d.flags & kDescWrite) != 0;
  if (!writes && seen_writable) return unexpected(fail(QueueErrc::ReadableAfterWritable, d.addr));
  seen_writable = seen_writable || writes;
  if (d.len != 0) out.push_back(ChainSegment{GuestAddress{d.addr}, d.len, writes});
  return {};
}

Result<void, QueueError> SplitQueue::read_indirect(const Descriptor& d, std::uint32_t& budget, bool& seen_writable,
                                                   std::vector<ChainSegment>& out) const {
  if (!indirect_) return unexpected(fail(QueueErrc::IndirectNotNegotiated, d.addr));
  if ((d.flags & kDescNext) != 0) return unexpected(fail(QueueErrc::IndirectWithNext, d.addr));
  const std::uint32_t entries = d.len / 16;
  if (d.len == 0 || d.len % 16 != 0 || entries > size_) return unexpected(fail(QueueErrc::IndirectBadLength, d.len));
  auto table = memory_->translate(GuestAddress{d.addr}, d.len, DeviceAccess::ReadsGuest);
  if (!table) return unexpected(fail(QueueErrc::IndirectUnmapped, d.addr));
  std::uint32_t index = 0;
  for (;;) {
    if (budget == 0) return unexpected(fail(QueueErrc::ChainTooLong, size_));
    --budget;
    const Descriptor inner = copy_descriptor(table->host, index);
    if ((inner.flags & kDescIndirect) != 0) return unexpected(fail(QueueErrc::IndirectNested, inner.addr));
    RF_TRY_VOID(append(inner, seen_writable, out));
    if ((inner.flags & kDescNext) == 0) return {};
    if (inner.next >= entries) return unexpected(fail(QueueErrc::HeadOutOfRange, inner.next));
    index = inner.next;
  }
}

Result<void, QueueError> SplitQueue::read_chain(std::uint16_t head, std::vector<ChainSegment>& out) const {
  out.clear();
  if (head >= size_) return unexpected(fail(QueueErrc::HeadOutOfRange, head));
  // Every buffer of the chain, direct or in the indirect table, spends one: a chain cannot be
  // longer than the queue (virtio 1.1, 2.7.5.3.1), so running out means a loop. The descriptor
  // that names an indirect table is not a buffer and gives its unit back: Linux fills a table
  // with up to seg_max + 2 = the queue size entries (a 1 MiB direct write of 4 KiB pages).
  std::uint32_t budget = size_;
  bool seen_writable = false;
  std::uint32_t index = head;
  for (;;) {
    if (budget == 0) return unexpected(fail(QueueErrc::ChainTooLong, size_));
    --budget;
    const Descriptor d = copy_descriptor(desc_, index);
    if ((d.flags & kDescIndirect) != 0) {
      ++budget;  // it ends the chain (no NEXT with INDIRECT): at most `size` buffers either way
      return read_indirect(d, budget, seen_writable, out);
    }
    RF_TRY_VOID(append(d, seen_writable, out));
    if ((d.flags & kDescNext) == 0) return {};
    if (d.next >= size_) return unexpected(fail(QueueErrc::HeadOutOfRange, d.next));
    index = d.next;
  }
}

}  // namespace rf::virtio
