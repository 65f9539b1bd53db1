// The mediated mode's check of one guest SQE: the address check the kernel never merged
// (IORING_RESTRICTION_BUFFER_CHECK) plus the offset bound the kernel does not do.
//
// It works on a private copy (GuestRing::copy_sqe) and is a pure function of that copy and the
// device's configuration, so it can be tested and fuzzed on its own. Rules apply in a fixed
// order and the first that fails decides the errno the guest gets (docs/abi.md):
//
//   1. Opcode       the policy allows it, and the mediator implements it       -EACCES
//   2. Flags        the policy's allowed/required SQE flags                    -EPERM
//   3. FileIndex    `fd` names a registered disk                               -EBADF
//   4. ReadOnly     no write to a read-only disk                               -EROFS
//   5. Range        off + len within the disk (checked arithmetic)             -ENXIO
//   6. Length       len non-zero and at most the device's max transfer         -EMSGSIZE
//   7. Alignment    off and len multiples of the disk's logical block size     -EINVAL
//   8. Memory       [addr, addr + len) inside one buffer window of guest RAM,
//                   writable if the device writes it (a disk read)             -EFAULT
//
// FSYNC is checked against rules 1-3 only; its off, len and addr are ignored (a full fsync).
// FALLOCATE (the virtio-blk back-end's DISCARD and WRITE_ZEROES; never a ring guest's: the
// mediator gives its devices no zeroing limit) is implemented only in the two modes that keep
// the disk's size (kZeroRangeMode, kPunchHoleMode: anything else fails rule 1), writes the disk
// (rule 4), and is checked over [off, off + addr) by rules 5-7 against the zeroing limit; it
// touches no guest memory.
// A span that crosses from one window into another (two regions, or two 1 GiB fixed-buffer
// pieces) is refused under rule 8, never split: the descriptor tells the guest the windows.
// Fields a block request does not use (ioprio, rw_flags, buf_index, personality, ...) are
// ignored: the kernel SQE is built from the validated fields alone.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string_view>

#include "abi/ring_entries.h"
#include "memory/guest_memory.h"
#include "ring/restriction.h"
#include "ring/sqe.h"
#include "util/result.h"

namespace rf {

enum class RefusalRule : std::uint8_t { Opcode, Flags, FileIndex, ReadOnly, Range, Length, Alignment, Memory };
inline constexpr std::size_t kRefusalRuleCount = 8;

// The negative errno a refused SQE completes with.
int refusal_errno(RefusalRule rule);
std::string_view refusal_rule_name(RefusalRule rule);

struct DiskLimits {
  std::uint64_t size_bytes = 0;
  std::uint32_t logical_block_size = 512;  // a power of two
  bool read_only = false;
};

struct ValidationContext {
  const RestrictionSet* policy = nullptr;
  std::span<const DiskLimits> disks;  // index = fixed-file index
  const GuestMemory* memory = nullptr;  // with its fixed-buffer table set
  std::uint32_t max_transfer = 0;
  // The most bytes one FALLOCATE may zero; 0: the device does not zero (FALLOCATE fails rule 1).
  std::uint32_t max_zeroing = 0;
};

// The FALLOCATE modes rule 1 accepts. Both keep the size (a block device refuses anything else,
// and on a file it would grow the image) and leave the range reading as zeros.
inline constexpr std::uint32_t kZeroRangeMode = 0x10 | 0x01;  // FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE
inline constexpr std::uint32_t kPunchHoleMode = 0x02 | 0x01;  // FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE

// A request that passed every rule, in host terms.
struct ValidatedRequest {
  SqeOpcode op = SqeOpcode::Nop;
  FixedFileIndex disk;
  std::uint64_t offset = 0;
  std::uint32_t len = 0;
  std::byte* host = nullptr;  // null for FSYNC and FALLOCATE
  BufferIndex buffer;
  std::uint32_t fallocate_mode = 0;  // FALLOCATE's mode
};

Result<ValidatedRequest, RefusalRule> validate_guest_sqe(const abi::GuestSqe& sqe, const ValidationContext& context);

// The SQE the mediator submits for a validated request (user_data set by the caller).
Sqe kernel_sqe(const ValidatedRequest& request);
// The result the kernel completes a validated request with when all of it succeeded: the bytes
// moved for a read or write, 0 for FSYNC and FALLOCATE.
std::int32_t full_result(const ValidatedRequest& request);

}  // namespace rf
