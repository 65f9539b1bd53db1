#include "ring/completion_queue.h"

#include <atomic>
#include <cstring>

#include "ring/ring_fields.h"
#include "sys/uapi_compat.h"

namespace rf {

CompletionQueue::CompletionQueue(std::byte* rings, const CqRingOffsets& offsets)
    : khead_(ring_field(rings, offsets.head)),
      ktail_(ring_field(rings, offsets.tail)),
      koverflow_(ring_field(rings, offsets.overflow)),
      kflags_(offsets.flags != 0 ? ring_field(rings, offsets.flags) : nullptr),
      cqes_(rings + offsets.cqes),
      mask_(*ring_field(rings, offsets.ring_mask)),
      entries_(*ring_field(rings, offsets.ring_entries)) {}

unsigned CompletionQueue::ready() const {
  const std::uint32_t tail = std::atomic_ref<std::uint32_t>(*ktail_).load(std::memory_order_acquire);
  return tail - std::atomic_ref<std::uint32_t>(*khead_).load(std::memory_order_relaxed);
}

std::optional<Cqe> CompletionQueue::pop() {
  const std::uint32_t head = std::atomic_ref<std::uint32_t>(*khead_).load(std::memory_order_relaxed);
  // Acquire: the CQE contents are visible once we see the tail that covers them.
  const std::uint32_t tail = std::atomic_ref<std::uint32_t>(*ktail_).load(std::memory_order_acquire);
  if (head == tail) return std::nullopt;
  io_uring_cqe raw;
  // SAFETY: (head & mask_) < entries_, and the CQE array holds entries_ 16-byte entries; the
  // kernel does not rewrite the slot until we advance the head past it.
  std::memcpy(&raw, cqes_ + static_cast<std::size_t>(head & mask_) * sizeof(io_uring_cqe), sizeof(raw));
  // Release: we are done reading the slot before the kernel may reuse it.
  std::atomic_ref<std::uint32_t>(*khead_).store(head + 1, std::memory_order_release);
  return Cqe{raw.user_data, raw.res, raw.flags};
}

std::uint32_t CompletionQueue::overflow() const {
  return std::atomic_ref<std::uint32_t>(*koverflow_).load(std::memory_order_relaxed);
}

void CompletionQueue::set_eventfd_enabled(bool enabled) {
  if (kflags_ == nullptr) return;
  std::atomic_ref<std::uint32_t> flags(*kflags_);
  std::uint32_t current = flags.load(std::memory_order_relaxed);
  const std::uint32_t wanted =
      enabled ? (current & ~IORING_CQ_EVENTFD_DISABLED) : (current | IORING_CQ_EVENTFD_DISABLED);
  flags.store(wanted, std::memory_order_release);
}

bool CompletionQueue::eventfd_enabled() const {
  if (kflags_ == nullptr) return true;
  return (std::atomic_ref<std::uint32_t>(*kflags_).load(std::memory_order_relaxed) & IORING_CQ_EVENTFD_DISABLED) == 0;
}

}  // namespace rf
