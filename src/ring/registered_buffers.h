// Registering a ring's fixed buffers: the only memory READ_FIXED / WRITE_FIXED can touch.
//
// Kernel limits (checked on Linux 6.18): at most 16384 buffers, each at most 1 GiB, and the
// pinned pages are charged to RLIMIT_MEMLOCK unless the caller has CAP_IPC_LOCK. A region
// larger than 1 GiB is registered as several buffers, and an I/O that crosses from one
// buffer into the next fails with -EFAULT: such an I/O must be split by its submitter.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "ring/ring_error.h"
#include "ring/sqe.h"

namespace rf {

inline constexpr std::size_t kMaxFixedBuffers = 16384;
inline constexpr std::size_t kMaxFixedBufferBytes = std::size_t{1} << 30;

// Host memory to register (borrowed: it must stay mapped while the ring uses it).
struct BufferRegion {
  std::byte* host = nullptr;
  std::size_t len = 0;
};

// One registered buffer: a piece of at most 1 GiB of one region.
struct BufferPiece {
  BufferIndex index;
  std::uintptr_t host_base = 0;
  std::size_t len = 0;
  std::size_t region = 0;         // index into the regions passed to plan()
  std::size_t region_offset = 0;  // where the piece starts inside that region
};

class BufferTable {
 public:
  // Splits regions into pieces of at most `max_piece_bytes` (1 GiB for the kernel; smaller
  // values exist for tests). Refuses empty or null regions, address wrap-around, overlapping
  // regions and more than 16384 pieces.
  static Result<BufferTable, RingError> plan(std::span<const BufferRegion> regions,
                                             std::size_t max_piece_bytes = kMaxFixedBufferBytes);

  std::span<const BufferPiece> pieces() const { return pieces_; }
  std::size_t total_bytes() const { return total_bytes_; }
  // The buffer that holds all of [host, host + len), if one does; nullopt when the range is
  // empty, outside every buffer, or crosses a buffer boundary.
  std::optional<BufferPiece> find(std::uintptr_t host, std::size_t len) const;

 private:
  std::vector<BufferPiece> pieces_;  // sorted by host_base
  std::size_t total_bytes_ = 0;
};

// Plans `regions` (BufferTable::plan) and registers them; the table says which buffer index
// covers which memory.
Result<BufferTable, RingError> plan_and_register_buffers(int ring_fd, std::span<const BufferRegion> regions);

// Registers the table's pieces as fixed buffers 0..n-1. An RLIMIT_MEMLOCK failure comes back
// as RingErrc::MemlockLimit with the limit, the amount and the fix in the message.
Result<void, RingError> register_buffers(int ring_fd, const BufferTable& table);

}  // namespace rf
