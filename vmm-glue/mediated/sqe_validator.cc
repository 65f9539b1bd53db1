#include "mediated/sqe_validator.h"

#include <cerrno>

#include "util/checked_math.h"

namespace rf {

int refusal_errno(RefusalRule rule) {
  switch (rule) {
    case RefusalRule::Opcode: return -EACCES;
    case RefusalRule::Flags: return -EPERM;
    case RefusalRule::FileIndex: return -EBADF;
    case RefusalRule::ReadOnly: return -EROFS;
    case RefusalRule::Range: return -ENXIO;
    case RefusalRule::Length: return -EMSGSIZE;
    case RefusalRule::Alignment: return -EINVAL;
    case RefusalRule::Memory: return -EFAULT;
  }
  return -EINVAL;
}

std::string_view refusal_rule_name(RefusalRule rule) {
  switch (rule) {
    case RefusalRule::Opcode: return "opcode";
    case RefusalRule::Flags: return "flags";
    case RefusalRule::FileIndex: return "file index";
    case RefusalRule::ReadOnly: return "read-only disk";
    case RefusalRule::Range: return "offset range";
    case RefusalRule::Length: return "length";
    case RefusalRule::Alignment: return "alignment";
    case RefusalRule::Memory: return "guest memory";
  }
  return "unknown";
}

namespace {

// Rules 5-7 for FALLOCATE, whose length is in `addr` (a u64) and its mode in `len`.
Result<ValidatedRequest, RefusalRule> validate_zeroing(const abi::GuestSqe& sqe, const DiskLimits& disk,
                                                       std::uint32_t max_zeroing, ValidatedRequest request) {
  const auto end = checked_add<std::uint64_t>(sqe.off, sqe.addr);
  if (!end || *end > disk.size_bytes) return unexpected(RefusalRule::Range);
  if (sqe.addr == 0 || sqe.addr > max_zeroing) return unexpected(RefusalRule::Length);
  const std::uint64_t block_mask = disk.logical_block_size - 1;
  if ((sqe.off & block_mask) != 0 || (sqe.addr & block_mask) != 0) return unexpected(RefusalRule::Alignment);
  request.offset = sqe.off;
  request.len = static_cast<std::uint32_t>(sqe.addr);  // <= max_zeroing
  request.fallocate_mode = sqe.len;
  return request;
}

}  // namespace

Result<ValidatedRequest, RefusalRule> validate_guest_sqe(const abi::GuestSqe& sqe, const ValidationContext& context) {
  // GUEST-CONTROLLED: every field of `sqe`. It is a private copy: nothing here reads guest
  // memory except through GuestMemory's bounds-checked translation.
  const auto op = static_cast<SqeOpcode>(sqe.opcode);
  const bool zeroing = op == SqeOpcode::Fallocate;
  const bool implemented = op == SqeOpcode::ReadFixed || op == SqeOpcode::WriteFixed || op == SqeOpcode::Fsync ||
                           (zeroing && context.max_zeroing != 0 && (sqe.len == kZeroRangeMode || sqe.len == kPunchHoleMode));
  if (!implemented || !context.policy->allows(op)) return unexpected(RefusalRule::Opcode);
  if (!context.policy->permits_flags(sqe.flags)) return unexpected(RefusalRule::Flags);
  // Without FIXED_FILE, `fd` would be a VMM descriptor number: the policy requires the flag,
  // and the mediator only ever submits fixed files, so treat its absence as a flags refusal.
  if ((sqe.flags & abi::kSqeFixedFile) == 0) return unexpected(RefusalRule::Flags);
  if (sqe.fd < 0 || static_cast<std::size_t>(sqe.fd) >= context.disks.size()) return unexpected(RefusalRule::FileIndex);
  const DiskLimits& disk = context.disks[static_cast<std::size_t>(sqe.fd)];
  ValidatedRequest request;
  request.op = op;
  request.disk = FixedFileIndex{static_cast<std::uint32_t>(sqe.fd)};
  if (op == SqeOpcode::Fsync) return request;

  const bool disk_write = op == SqeOpcode::WriteFixed || zeroing;
  if (disk_write && disk.read_only) return unexpected(RefusalRule::ReadOnly);
  if (zeroing) return validate_zeroing(sqe, disk, context.max_zeroing, request);
  const auto end = checked_add<std::uint64_t>(sqe.off, sqe.len);
  if (!end || *end > disk.size_bytes) return unexpected(RefusalRule::Range);
  if (sqe.len == 0 || sqe.len > context.max_transfer) return unexpected(RefusalRule::Length);
  const std::uint64_t block_mask = disk.logical_block_size - 1;
  if ((sqe.off & block_mask) != 0 || (sqe.len & block_mask) != 0) return unexpected(RefusalRule::Alignment);
  // A disk read writes guest memory; a disk write reads it.
  const DeviceAccess access = disk_write ? DeviceAccess::ReadsGuest : DeviceAccess::WritesGuest;
  auto buffer = context.memory->buffer_for(GuestAddress{sqe.addr}, sqe.len, access);
  if (!buffer) return unexpected(RefusalRule::Memory);
  request.offset = sqe.off;
  request.len = sqe.len;
  request.host = buffer->host;
  request.buffer = buffer->index;
  return request;
}

Sqe kernel_sqe(const ValidatedRequest& r) {
  const FileRef file = FileRef::fixed(r.disk);
  switch (r.op) {
    case SqeOpcode::ReadFixed: return Sqe::read_fixed(file, r.host, r.len, r.offset, r.buffer);
    case SqeOpcode::WriteFixed: return Sqe::write_fixed(file, r.host, r.len, r.offset, r.buffer);
    case SqeOpcode::Fallocate: return Sqe::fallocate(file, r.offset, r.len, r.fallocate_mode);
    default: return Sqe::fsync(file);
  }
}

std::int32_t full_result(const ValidatedRequest& r) {
  const bool moves_data = r.op == SqeOpcode::ReadFixed || r.op == SqeOpcode::WriteFixed;
  return moves_data ? static_cast<std::int32_t>(r.len) : 0;  // len <= max_transfer < 2^31
}

}  // namespace rf
