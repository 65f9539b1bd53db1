#include "ring/submission_queue.h"

#include <atomic>
#include <cstring>

#include "ring/ring_fields.h"
#include "sys/uapi_compat.h"

namespace rf {

namespace {

io_uring_sqe to_kernel_sqe(const Sqe& in) {
  io_uring_sqe out;
  std::memset(&out, 0, sizeof(out));
  out.opcode = to_u8(in.opcode);
  out.flags = in.flags;
  out.ioprio = in.ioprio;
  out.fd = in.fd;
  out.off = in.off;
  out.addr = in.addr;
  out.len = in.len;
  out.rw_flags = static_cast<__kernel_rwf_t>(in.op_flags);
  out.user_data = in.user_data;
  out.buf_index = in.buf_index;
  out.personality = in.personality;
  out.splice_fd_in = in.splice_fd_in;
  out.addr3 = in.addr3;
  out.__pad2[0] = in.pad2;
  return out;
}

}  // namespace

SubmissionQueue::SubmissionQueue(std::byte* rings, std::byte* sqes, const SqRingOffsets& offsets)
    : khead_(ring_field(rings, offsets.head)),
      ktail_(ring_field(rings, offsets.tail)),
      kflags_(ring_field(rings, offsets.flags)),
      kdropped_(ring_field(rings, offsets.dropped)),
      array_(offsets.has_array ? ring_field(rings, offsets.array) : nullptr),
      sqes_(sqes),
      mask_(*ring_field(rings, offsets.ring_mask)),
      entries_(*ring_field(rings, offsets.ring_entries)) {
  // A fresh ring starts at 0, but the tail may have been advanced before (e.g. by a submit
  // the kernel refused on a disabled ring); continue from where the shared tail is.
  local_tail_ = published_tail_ = std::atomic_ref<std::uint32_t>(*ktail_).load(std::memory_order_relaxed);
}

std::uint32_t SubmissionQueue::load_head() const {
  return std::atomic_ref<std::uint32_t>(*khead_).load(std::memory_order_acquire);
}

std::uint32_t SubmissionQueue::load_flags() const {
  return std::atomic_ref<std::uint32_t>(*kflags_).load(std::memory_order_relaxed);
}

unsigned SubmissionQueue::space_left() const { return entries_ - (local_tail_ - load_head()); }

unsigned SubmissionQueue::unconsumed() const { return published_tail_ - load_head(); }

bool SubmissionQueue::try_push(const Sqe& sqe) {
  if (space_left() == 0) return false;
  const std::uint32_t index = local_tail_ & mask_;
  const io_uring_sqe raw = to_kernel_sqe(sqe);
  // SAFETY: index <= mask_ < entries_, and the SQE array holds entries_ 64-byte entries; the
  // slot is ours because the kernel consumed it (space_left() > 0).
  std::memcpy(sqes_ + static_cast<std::size_t>(index) * sizeof(io_uring_sqe), &raw, sizeof(raw));
  if (array_ != nullptr) array_[index] = index;
  ++local_tail_;
  return true;
}

unsigned SubmissionQueue::publish() {
  const unsigned newly = local_tail_ - published_tail_;
  if (newly != 0) {
    // Release: the SQE contents (and array slots) are visible before the new tail.
    std::atomic_ref<std::uint32_t>(*ktail_).store(local_tail_, std::memory_order_release);
    published_tail_ = local_tail_;
  }
  return newly;
}

bool SubmissionQueue::needs_wakeup() const {
  // Full barrier between our tail store and reading the flags, pairing with the SQPOLL
  // thread's barrier between setting NEED_WAKEUP and re-checking the tail.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  return (load_flags() & IORING_SQ_NEED_WAKEUP) != 0;
}

bool SubmissionQueue::cq_overflow() const { return (load_flags() & IORING_SQ_CQ_OVERFLOW) != 0; }

std::uint32_t SubmissionQueue::dropped() const {
  return std::atomic_ref<std::uint32_t>(*kdropped_).load(std::memory_order_relaxed);
}

}  // namespace rf
