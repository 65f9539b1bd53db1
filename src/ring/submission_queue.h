// SubmissionQueue: the producer side of a ring's SQ, in memory shared with the kernel.
// Host-side only: in passthrough mode the guest writes the SQ itself and this class is not
// used after the ring is handed over.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ring/sqe.h"

namespace rf {

// Byte offsets of the SQ fields inside the ring memory, as io_uring_setup(2) reports them.
struct SqRingOffsets {
  std::uint32_t head = 0;
  std::uint32_t tail = 0;
  std::uint32_t ring_mask = 0;
  std::uint32_t ring_entries = 0;
  std::uint32_t flags = 0;
  std::uint32_t dropped = 0;
  std::uint32_t array = 0;
  bool has_array = true;  // false with IORING_SETUP_NO_SQARRAY
};

class SubmissionQueue {
 public:
  SubmissionQueue() = default;
  // `rings` holds the SQ header (and the index array unless NO_SQARRAY); `sqes` the SQE array.
  // Both stay mapped for the queue's lifetime; the owning ring guarantees that.
  SubmissionQueue(std::byte* rings, std::byte* sqes, const SqRingOffsets& offsets);

  // Copies `sqe` into the next free slot; false when the queue is full (back-pressure, not an
  // error: the caller keeps the request and retries after completions).
  bool try_push(const Sqe& sqe);
  // Makes every pushed SQE visible to the kernel (release-store of the tail); returns how many
  // were newly published.
  unsigned publish();

  unsigned entries() const { return entries_; }
  // Slots free for try_push: entries minus what the kernel has not consumed yet, as told by
  // the kernel's SQ head. With SQPOLL the kernel posts a batch's completions before it
  // advances the head, so a completion does not by itself mean its SQ slot is free again.
  unsigned space_left() const;
  // Published entries the kernel has not consumed yet.
  unsigned unconsumed() const;
  // SQPOLL: the kernel thread went to sleep and needs IORING_ENTER_SQ_WAKEUP.
  bool needs_wakeup() const;
  // The kernel could not post a completion (CQ full); IORING_SQ_CQ_OVERFLOW.
  bool cq_overflow() const;
  // SQEs the kernel dropped as invalid (index out of range).
  std::uint32_t dropped() const;

 private:
  std::uint32_t load_head() const;
  std::uint32_t load_flags() const;

  std::uint32_t* khead_ = nullptr;  // written by the kernel
  std::uint32_t* ktail_ = nullptr;  // written by us
  std::uint32_t* kflags_ = nullptr;
  std::uint32_t* kdropped_ = nullptr;
  std::uint32_t* array_ = nullptr;  // null with NO_SQARRAY
  std::byte* sqes_ = nullptr;
  std::uint32_t mask_ = 0;
  std::uint32_t entries_ = 0;
  std::uint32_t local_tail_ = 0;      // pushed, maybe not yet published
  std::uint32_t published_tail_ = 0;  // last value stored to *ktail_
};

}  // namespace rf
