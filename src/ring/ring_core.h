// RingCore: what every stage of a ring owns (descriptor, mappings, queue views). Internal to
// the ring module: DisabledRing, RestrictedRing and Ring move one along as the ring advances.
#pragma once

#include <cstdint>

#include "ring/completion_queue.h"
#include "ring/ring_options.h"
#include "ring/submission_queue.h"
#include "util/mmap_region.h"
#include "util/unique_fd.h"

namespace rf {

struct RingInfo {
  unsigned sq_entries = 0;
  unsigned cq_entries = 0;
  std::uint32_t setup_flags = 0;  // IORING_SETUP_* as passed to the kernel
  std::uint32_t features = 0;     // IORING_FEAT_* as returned
  bool sqpoll = false;
  bool iopoll = false;
  bool caller_memory = false;  // NO_MMAP
  bool no_sqarray = false;
  // Where each ring field lives, as byte offsets into the ring memory (SQ array offset
  // included); the SQE array is separate. A VMM that shares the ring describes it with these.
  SqRingOffsets sq_offsets;
  CqRingOffsets cq_offsets;
};

class RingCore {
 public:
  static Result<RingCore, RingError> create(const RingOptions& options);

  int fd() const { return fd_.get(); }
  SubmissionQueue& sq() { return sq_; }
  CompletionQueue& cq() { return cq_; }
  const RingInfo& info() const { return info_; }

  // Unmaps the rings and closes the descriptor now, as the destructor would. The kernel then
  // cancels what is still in flight and releases the ring's registrations (unpinning its fixed
  // buffers) on its own time, shortly after. sq()/cq() are empty and fd() is -1 afterwards.
  void close() noexcept;
  bool is_open() const { return static_cast<bool>(fd_); }

 private:
  RingCore() = default;

  // Declared in reverse teardown order: members are destroyed bottom-up, so the ring memory
  // is unmapped before the ring descriptor is closed.
  UniqueFd fd_;
  MmapRegion rings_map_;  // empty when the caller provided the memory (NO_MMAP)
  MmapRegion sqes_map_;   // idem
  SubmissionQueue sq_;
  CompletionQueue cq_;
  RingInfo info_;
};

// IORING_SETUP_* flags for `options` (always including R_DISABLED).
std::uint32_t setup_flags_for(const RingOptions& options);

}  // namespace rf
