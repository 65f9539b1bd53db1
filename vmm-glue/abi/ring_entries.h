// The SQE and CQE a guest writes and reads: io_uring's own layouts (struct io_uring_sqe and
// struct io_uring_cqe), restated for the freestanding guest, which cannot include kernel
// headers. tests/vmm/ring_entries_test.cc checks every offset against <linux/io_uring.h>.
// Native byte order: in passthrough the kernel reads these with the host CPU's byte order.
#pragma once

#include <cstddef>
#include <cstdint>

namespace rf::abi {

inline constexpr std::uint32_t kSqeBytes = 64;
inline constexpr std::uint32_t kCqeBytes = 16;

struct GuestSqe {
  std::uint8_t opcode;
  std::uint8_t flags;
  std::uint16_t ioprio;
  std::int32_t fd;  // with kSqeFixedFile: the fixed-file index of a disk
  std::uint64_t off;
  std::uint64_t addr;
  std::uint32_t len;
  std::uint32_t op_flags;  // rw_flags / fsync_flags
  std::uint64_t user_data;
  std::uint16_t buf_index;
  std::uint16_t personality;
  std::int32_t splice_fd_in;
  std::uint64_t addr3;
  std::uint64_t pad;
};
static_assert(sizeof(GuestSqe) == kSqeBytes);

struct GuestCqe {
  std::uint64_t user_data;
  std::int32_t res;
  std::uint32_t flags;
};
static_assert(sizeof(GuestCqe) == kCqeBytes);

// The opcodes and flag a block driver uses (IORING_OP_*, IOSQE_FIXED_FILE).
inline constexpr std::uint8_t kOpNop = 0;
inline constexpr std::uint8_t kOpFsync = 3;
inline constexpr std::uint8_t kOpReadFixed = 4;
inline constexpr std::uint8_t kOpWriteFixed = 5;
inline constexpr std::uint8_t kSqeFixedFile = 1u << 0;

}  // namespace rf::abi
