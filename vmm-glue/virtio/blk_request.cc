#include "virtio/blk_request.h"

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "abi/ring_entries.h"
#include "util/checked_math.h"

namespace rf::virtio {

std::string_view blk_refusal_name(BlkRefusal refusal) {
  switch (refusal) {
    case BlkRefusal::None: return "none";
    case BlkRefusal::NoStatus: return "no status byte";
    case BlkRefusal::BadHeader: return "bad header";
    case BlkRefusal::BadLayout: return "bad buffer layout";
    case BlkRefusal::Unsupported: return "unsupported type";
    case BlkRefusal::TooManyPieces: return "too many pieces";
    case BlkRefusal::Rule: return "mediator rule";
  }
  return "unknown";
}

namespace {

struct Streams {
  std::uint64_t readable = 0;  // total device-readable bytes
  std::uint64_t writable = 0;  // total device-writable bytes
};

Streams measure(std::span<const ChainSegment> chain) {
  Streams s;
  // At most 32768 segments of < 2^32 bytes each: the sums stay far below 2^64.
  for (const ChainSegment& c : chain) (c.device_writes ? s.writable : s.readable) += c.len;
  return s;
}

// GUEST-CONTROLLED: the bytes copied; once, through translation, from the device-readable
// stream's bytes [skip, skip + sizeof(T)) however the descriptors cut them.
template <typename T>
bool copy_readable(std::span<const ChainSegment> chain, const GuestMemory& memory, std::uint64_t skip, T& value) {
  static_assert(std::is_trivially_copyable_v<T>);
  auto* out = reinterpret_cast<std::byte*>(&value);  // SAFETY: a trivially copyable struct, viewed as its bytes
  std::size_t have = 0;
  for (const ChainSegment& c : chain) {
    if (c.device_writes || have == sizeof value) break;
    if (skip >= c.len) {
      skip -= c.len;
      continue;
    }
    const std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(c.len - skip, sizeof value - have));
    auto span = memory.translate(c.gpa.unchecked_add(skip), take, DeviceAccess::ReadsGuest);  // skip < len
    if (!span) return false;
    std::memcpy(out + have, span->host, take);
    have += take;
    skip = 0;
  }
  return have == sizeof value;
}

// The host byte of the last device-writable byte; null when there is none or it is not guest RAM.
std::byte* find_status(std::span<const ChainSegment> chain, const GuestMemory& memory) {
  if (chain.empty() || !chain.back().device_writes) return nullptr;  // writable ones come last
  const ChainSegment& last = chain.back();
  const auto at = last.gpa.checked_add(last.len - 1u);  // len >= 1: read_chain drops empty ones
  if (!at) return nullptr;
  auto span = memory.translate(*at, 1, DeviceAccess::WritesGuest);
  return span ? span->host : nullptr;
}

// Cuts the data in [skip, skip + bytes) of the chain's `writes` stream into I/Os that each stay
// inside one buffer window and within the max transfer, and validates each with the mediator's
// rules. Returns the refusal, or None.
struct Planner {
  const BlkTarget& target;
  std::vector<ValidatedRequest>& pieces;
  std::uint8_t opcode;
  std::uint64_t disk_offset;
  RefusalRule rule = RefusalRule::Opcode;

  BlkRefusal add(GuestAddress gpa, std::uint64_t bytes) {
    while (bytes != 0) {
      std::uint64_t cut = std::min<std::uint64_t>(bytes, target.validation.max_transfer);
      if (const BufferWindow* w = target.validation.memory->buffer_window_at(gpa)) {
        cut = std::min(cut, w->bytes - gpa.unchecked_offset_from(w->base));  // w holds gpa
      }  // else: the Memory rule refuses it below
      if (pieces.size() == kMaxPiecesPerRequest) return BlkRefusal::TooManyPieces;
      abi::GuestSqe sqe{};
      sqe.opcode = opcode;
      sqe.flags = abi::kSqeFixedFile;
      sqe.fd = 0;
      sqe.off = disk_offset;
      sqe.addr = gpa.value();
      sqe.len = static_cast<std::uint32_t>(cut);  // <= max_transfer, a uint32_t
      auto valid = validate_guest_sqe(sqe, target.validation);
      if (!valid) {
        rule = valid.error();
        return BlkRefusal::Rule;
      }
      pieces.push_back(*valid);
      const auto next_offset = checked_add(disk_offset, cut);
      const auto next_gpa = gpa.checked_add(cut);
      // Validation bounded off + len by the disk size; the translation bounded gpa + len.
      if (!next_offset || !next_gpa) return BlkRefusal::Rule;
      disk_offset = *next_offset;
      gpa = *next_gpa;
      bytes -= cut;
    }
    return BlkRefusal::None;
  }

  // The `writes` stream's bytes from `skip` on, `bytes` of them.
  BlkRefusal add_stream(std::span<const ChainSegment> chain, bool writes, std::uint64_t skip, std::uint64_t bytes) {
    for (const ChainSegment& c : chain) {
      if (c.device_writes != writes || bytes == 0) continue;
      if (skip >= c.len) {
        skip -= c.len;
        continue;
      }
      const std::uint64_t take = std::min<std::uint64_t>(c.len - skip, bytes);
      const BlkRefusal r = add(c.gpa.unchecked_add(skip), take);  // skip < len, and gpa + len was a descriptor
      if (r != BlkRefusal::None) return r;
      skip = 0;
      bytes -= take;
    }
    return BlkRefusal::None;
  }
};

ParsedBlkRequest refuse(ParsedBlkRequest p, BlkRefusal why, std::uint8_t status = kBlkStatusIoErr) {
  p.refusal = why;
  p.status_value = status;
  return p;
}

// GET_ID: the serial into the device-writable bytes before the status, at once.
ParsedBlkRequest answer_get_id(ParsedBlkRequest p, std::span<const ChainSegment> chain, std::uint64_t data_bytes,
                               const BlkTarget& target) {
  std::uint64_t left = std::min<std::uint64_t>(data_bytes, kBlkIdBytes);
  std::size_t from = 0;
  for (const ChainSegment& c : chain) {
    if (!c.device_writes || left == 0) continue;
    const std::uint64_t take = std::min<std::uint64_t>(c.len, left);
    auto span = target.validation.memory->translate(c.gpa, take, DeviceAccess::WritesGuest);
    if (!span) return refuse(p, BlkRefusal::Rule);
    // The serial, NUL-padded to 20 bytes, as virtio-blk has it.
    for (std::uint64_t i = 0; i < take; ++i, ++from) {
      span->host[i] = from < target.serial.size() ? static_cast<std::byte>(target.serial[from]) : std::byte{0};
    }
    left -= take;
  }
  p.written_on_success = static_cast<std::uint32_t>(std::min<std::uint64_t>(data_bytes, kBlkIdBytes));
  return p;
}

// DISCARD and WRITE_ZEROES: one FALLOCATE per segment of the device-readable data after the
// header, each validated like any piece; the first problem decides the status.
ParsedBlkRequest plan_zeroing(ParsedBlkRequest p, std::span<const ChainSegment> chain, std::uint64_t data_out,
                              std::uint64_t data_in, const BlkTarget& target, std::vector<ValidatedRequest>& pieces) {
  const auto fail = [&](BlkRefusal why, std::uint8_t status = kBlkStatusIoErr) {
    pieces.clear();  // nothing of a refused request reaches the kernel
    return refuse(p, why, status);
  };
  const bool discard = p.type == kBlkDiscard;
  if (!(discard ? target.zeroing.discard : target.zeroing.write_zeroes)) {
    return fail(BlkRefusal::Unsupported, kBlkStatusUnsupported);  // not negotiated
  }
  if (data_in != 0 || data_out == 0 || data_out % sizeof(BlkZeroingSegment) != 0) return fail(BlkRefusal::BadLayout);
  const std::uint64_t segments = data_out / sizeof(BlkZeroingSegment);
  if (segments > kMaxZeroingSegments) return fail(BlkRefusal::TooManyPieces);
  for (std::uint64_t i = 0; i < segments; ++i) {
    BlkZeroingSegment segment{};  // GUEST-CONTROLLED: checked here and by validate_guest_sqe
    if (!copy_readable(chain, *target.validation.memory, sizeof(BlkRequestHeader) + i * sizeof segment, segment)) {
      return fail(BlkRefusal::BadHeader);
    }
    const bool unmap = (segment.flags & kBlkZeroingFlagUnmap) != 0;
    // The spec: an unknown flag, or unmap on a DISCARD, is VIRTIO_BLK_S_UNSUPP.
    if ((segment.flags & ~kBlkZeroingFlagUnmap) != 0 || (discard && unmap)) {
      return fail(BlkRefusal::Unsupported, kBlkStatusUnsupported);
    }
    const auto offset = checked_mul(segment.sector, kSectorBytes);
    if (!offset) {
      p.rule = RefusalRule::Range;
      return fail(BlkRefusal::Rule);
    }
    abi::GuestSqe sqe{};
    sqe.opcode = static_cast<std::uint8_t>(SqeOpcode::Fallocate);  // not in the ring ABI: only this parser builds it
    sqe.flags = abi::kSqeFixedFile;
    sqe.fd = 0;
    sqe.off = *offset;
    sqe.addr = std::uint64_t{segment.num_sectors} * kSectorBytes;  // < 2^41
    // The mode is the back-end's choice, never the guest's: both keep the disk's size.
    sqe.len = discard || (unmap && target.zeroing.may_unmap) ? kPunchHoleMode : kZeroRangeMode;
    auto valid = validate_guest_sqe(sqe, target.validation);
    if (!valid) {
      p.rule = valid.error();
      return fail(BlkRefusal::Rule);
    }
    pieces.push_back(*valid);
  }
  return p;
}

}  // namespace

ParsedBlkRequest parse_blk_request(std::span<const ChainSegment> chain, const BlkTarget& target,
                                   std::vector<ValidatedRequest>& pieces) {
  pieces.clear();
  ParsedBlkRequest p;
  const GuestMemory& memory = *target.validation.memory;
  p.status = find_status(chain, memory);
  if (p.status == nullptr) return refuse(p, BlkRefusal::NoStatus);
  BlkRequestHeader header{};
  if (!copy_readable(chain, memory, 0, header)) return refuse(p, BlkRefusal::BadHeader);
  p.type = header.type;
  const Streams s = measure(chain);
  const std::uint64_t data_in = s.writable - 1;  // before the status byte (find_status: >= 1)
  const std::uint64_t data_out = s.readable - sizeof header;  // copy_header: >= 16

  switch (header.type) {
    case kBlkIn:
    case kBlkOut: {
      const bool is_read = header.type == kBlkIn;
      // A read has only the header to read and data to write; a write the other way round.
      if ((is_read ? data_out : data_in) != 0 || (is_read ? data_in : data_out) == 0) {
        return refuse(p, BlkRefusal::BadLayout);
      }
      const auto offset = checked_mul(header.sector, kSectorBytes);
      if (!offset) {
        p.rule = RefusalRule::Range;
        return refuse(p, BlkRefusal::Rule);
      }
      Planner plan{target, pieces, is_read ? abi::kOpReadFixed : abi::kOpWriteFixed, *offset};
      const BlkRefusal r = is_read ? plan.add_stream(chain, true, 0, data_in)
                                   : plan.add_stream(chain, false, sizeof header, data_out);
      if (r != BlkRefusal::None) {
        pieces.clear();
        p.rule = plan.rule;
        return refuse(p, r);
      }
      p.written_on_success = is_read ? static_cast<std::uint32_t>(std::min<std::uint64_t>(data_in, UINT32_MAX - 1)) : 0;
      return p;
    }
    case kBlkFlush: {
      abi::GuestSqe sqe{};
      sqe.opcode = abi::kOpFsync;
      sqe.flags = abi::kSqeFixedFile;
      auto valid = validate_guest_sqe(sqe, target.validation);
      if (!valid) {
        p.rule = valid.error();
        return refuse(p, BlkRefusal::Rule);
      }
      pieces.push_back(*valid);
      return p;
    }
    case kBlkGetId:
      if (data_in == 0) return refuse(p, BlkRefusal::BadLayout);
      return answer_get_id(p, chain, data_in, target);
    case kBlkDiscard:
    case kBlkWriteZeroes:
      return plan_zeroing(p, chain, data_out, data_in, target, pieces);
    default:
      return refuse(p, BlkRefusal::Unsupported, kBlkStatusUnsupported);
  }
}

std::uint32_t blk_used_len(const ParsedBlkRequest& request, bool ok) {
  if (request.status == nullptr) return 0;
  return (ok ? request.written_on_success : 0) + 1;
}

}  // namespace rf::virtio
