// A virtio-blk request, from a descriptor chain the queue copied (split_queue.h) to the validated
// pieces of I/O the private kernel ring may see.
//
// GUEST-CONTROLLED: the chain's addresses and lengths, the request header (copied once from guest
// RAM), all of it; validated by parse_blk_request.
//
// No framing is assumed (virtio 1.x): the header is the first 16 device-readable bytes wherever
// the descriptors cut them, the status is the last device-writable byte, and the data is what
// lies between. IN and OUT data is cut at every fixed-buffer window of guest RAM and at the
// device's max transfer, and each piece goes through the mediator's eight rules
// (sqe_validator.h) as a READ_FIXED or WRITE_FIXED of disk 0: the read-only disk, the offset
// bound, the block alignment and the GPA check are the same code for virtio guests and for
// ring guests. One refused piece fails the whole request with VIRTIO_BLK_S_IOERR before any of
// it reaches the kernel. FLUSH becomes one FSYNC; GET_ID is answered at once. DISCARD and
// WRITE_ZEROES, where negotiated, become one FALLOCATE per segment, each through the same rules
// (sqe_validator.h: a mode that keeps the disk's size, the range, the zeroing limit, the
// alignment). Any other type, or a flag the spec does not define, is VIRTIO_BLK_S_UNSUPP.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "mediated/sqe_validator.h"
#include "virtio/split_queue.h"

namespace rf::virtio {

// What DISCARD and WRITE_ZEROES do on a queue: the features the driver negotiated, and whether
// the backing can deallocate (virtio_blk_config.write_zeroes_may_unmap).
struct BlkZeroing {
  bool discard = false;       // VIRTIO_BLK_F_DISCARD: DISCARD punches a hole (it reads as zeros after)
  bool write_zeroes = false;  // VIRTIO_BLK_F_WRITE_ZEROES: WRITE_ZEROES zeroes the range in place
  bool may_unmap = false;     // WRITE_ZEROES with the unmap flag punches a hole instead
};

// What a request is checked against.
struct BlkTarget {
  ValidationContext validation;  // policy, the disk (index 0), guest memory, max transfer and zeroing
  std::string_view serial;       // GET_ID's answer (at most 20 bytes are used)
  BlkZeroing zeroing;
};

// The most kernel I/Os one request may become; more fails it with IOERR. The private ring is
// sized so that one request of this many always fits.
inline constexpr std::size_t kMaxPiecesPerRequest = 256;
// DISCARD and WRITE_ZEROES: the most segments one request may carry (max_discard_seg and
// max_write_zeroes_seg), and the most bytes one segment may cover (max_discard_sectors and
// max_write_zeroes_sectors). A zeroing the block device cannot offload is written as zero pages
// by a kernel worker, so the bound also bounds how long one piece can hold that worker (and a
// queue's drain).
inline constexpr std::size_t kMaxZeroingSegments = 16;
inline constexpr std::uint32_t kMaxZeroingBytes = 64u << 20;
static_assert(kMaxZeroingSegments <= kMaxPiecesPerRequest);

// Why a request did not reach the kernel as asked (counted per queue).
enum class BlkRefusal : std::uint8_t {
  None,
  NoStatus,      // no device-writable byte for the status, or it is outside guest RAM
  BadHeader,     // fewer than 16 device-readable bytes, or they are outside guest RAM
  BadLayout,     // data in the wrong direction for the type, or none / some where there must be
  Unsupported,   // a request type this device does not implement, or a flag it does not know
  TooManyPieces, // more than kMaxPiecesPerRequest I/Os, or kMaxZeroingSegments segments
  Rule,          // a piece failed one of the mediator's rules (`rule` says which)
};
inline constexpr std::size_t kBlkRefusalCount = 7;
std::string_view blk_refusal_name(BlkRefusal refusal);

struct ParsedBlkRequest {
  std::byte* status = nullptr;       // the host byte the status goes to; null: nowhere to put it
  std::uint8_t status_value = kBlkStatusOk;  // the status when `pieces` is empty (answered at once)
  std::uint32_t written_on_success = 0;      // data bytes the device writes into the guest (IN, GET_ID)
  BlkRefusal refusal = BlkRefusal::None;
  RefusalRule rule = RefusalRule::Opcode;    // for BlkRefusal::Rule
  std::uint32_t type = 0;
};

// Parses the chain and fills `pieces` (cleared first) with the I/O to submit; empty when the
// request is answered at once (GET_ID, a refusal). `pieces` keeps its capacity across calls.
ParsedBlkRequest parse_blk_request(std::span<const ChainSegment> chain, const BlkTarget& target,
                                   std::vector<ValidatedRequest>& pieces);

// The bytes a used entry reports for a finished request: the data it wrote into the guest (only
// on success) and the status byte.
std::uint32_t blk_used_len(const ParsedBlkRequest& request, bool ok);

}  // namespace rf::virtio
