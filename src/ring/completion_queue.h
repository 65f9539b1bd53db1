// CompletionQueue: the consumer side of a ring's CQ, in memory shared with the kernel.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include "ring/sqe.h"

namespace rf {

struct CqRingOffsets {
  std::uint32_t head = 0;
  std::uint32_t tail = 0;
  std::uint32_t ring_mask = 0;
  std::uint32_t ring_entries = 0;
  std::uint32_t overflow = 0;
  std::uint32_t cqes = 0;
  std::uint32_t flags = 0;
};

class CompletionQueue {
 public:
  CompletionQueue() = default;
  CompletionQueue(std::byte* rings, const CqRingOffsets& offsets);

  // Takes the oldest completion, if any, and frees its slot for the kernel.
  std::optional<Cqe> pop();
  unsigned ready() const;
  unsigned entries() const { return entries_; }
  // Completions the kernel could not post (CQ full and no room for overflow).
  std::uint32_t overflow() const;

  // IORING_CQ_EVENTFD_DISABLED: a consumer that polls turns eventfd notifications off.
  void set_eventfd_enabled(bool enabled);
  bool eventfd_enabled() const;

 private:
  std::uint32_t* khead_ = nullptr;  // written by us
  std::uint32_t* ktail_ = nullptr;  // written by the kernel
  std::uint32_t* koverflow_ = nullptr;
  std::uint32_t* kflags_ = nullptr;
  std::byte* cqes_ = nullptr;
  std::uint32_t mask_ = 0;
  std::uint32_t entries_ = 0;
};

}  // namespace rf
