// libFuzzer target: the virtio-blk back-end's reading of a guest's split virtqueue
// (SplitQueue::read_chain) and of each request (parse_blk_request), on guest memory with a
// writable region, a hole and a read-only region.
//
// The input is a guest: the queue size, which of DISCARD and WRITE_ZEROES were negotiated (and
// whether the disk may unmap) and whether indirect tables were, then descriptors written into
// the table and into indirect tables (structure-aware: addresses aimed at each region, the hole,
// region ends and 2^64, lengths small, large and wrapping, flags and `next` anything, tables
// nested, looping or misaligned), request headers, zeroing segments and the heads to parse.
// Checked for every head, from the contract:
//   - read_chain ends (a loop is refused, never followed) and returns at most `size` segments;
//   - a chain with a readable segment after a writable one is never accepted;
//   - every piece of I/O lies inside one buffer window of guest RAM, writable when the device
//     writes it (a read), within the disk, block-aligned, non-empty and at most the max transfer,
//     in the direction its type says; there are at most kMaxPiecesPerRequest of them, and their
//     bytes add up to the request's data;
//   - a FALLOCATE comes only from a negotiated DISCARD or WRITE_ZEROES whose data is whole
//     segments (one piece each) and nothing for the device to write, in a mode that keeps the
//     size (PUNCH_HOLE for DISCARD, and for WRITE_ZEROES only with the unmap flag on a disk that
//     may unmap; ZERO_RANGE otherwise), within the disk, block-aligned, 1 byte to the zeroing
//     limit, touching no guest memory;
//   - the status byte, when there is one, is a byte of writable guest RAM;
//   - a refused request has no pieces and a status that says so; GET_ID writes only into
//     writable RAM (the read-only region never changes).
#include <cstdint>
#include <cstring>
#include <vector>

#include "device/guest_device.h"
#include "fuzz_check.h"
#include "virtio/blk_request.h"
#include "virtio/split_queue.h"

namespace {

using namespace rf;
using namespace rf::virtio;

constexpr std::uint64_t kPage = 4096;
constexpr std::uint64_t kWritableBase = 0, kWritableBytes = 64 * kPage;
constexpr std::uint64_t kReadOnlyBase = 128 * kPage, kReadOnlyBytes = 8 * kPage;
constexpr std::uint64_t kDesc = 0x1000, kAvail = 0x3000, kUsed = 0x4000, kTables = 0x8000;
constexpr std::uint64_t kDiskBytes = 256 * 1024;
constexpr std::uint32_t kMaxTransfer = 16 * 1024;  // small, so that cuts at the max transfer happen

struct World {
  GuestMemoryMap memory;
  RestrictionSet policy;
  std::vector<DiskLimits> limits{DiskLimits{kDiskBytes, 512, false}};
  std::vector<std::byte> read_only_snapshot;
  World() {
    const RegionLayout regions[] = {{GuestAddress{kWritableBase}, kWritableBytes, false},
                                    {GuestAddress{kReadOnlyBase}, kReadOnlyBytes, true}};
    // Fixed buffers of 16 KiB, so that data crosses buffer windows too.
    auto created = GuestMemoryBuilder::create(regions, MemoryBacking::Anonymous, 16 * 1024);
    RF_FUZZ_CHECK(created.has_value(), "guest memory is created");
    memory = std::move(*created);
    auto restrictions = device_restrictions(std::nullopt, "blk-virtio");
    RF_FUZZ_CHECK(restrictions.has_value(), "the built-in policy loads");
    policy = *restrictions;
  }
  std::byte* host(std::uint64_t gpa) const {
    const GuestRegion& r = gpa >= kReadOnlyBase ? memory->regions()[1] : memory->regions()[0];
    return r.host + (gpa - r.base.value());
  }
};

World& world() {
  static World w;
  return w;
}

// An address aimed somewhere interesting.
std::uint64_t pick_address(fuzz::ByteReader& in) {
  const std::uint8_t kind = in.byte();
  const std::uint64_t offset = in.take<std::uint16_t>();
  switch (kind % 8) {
    case 0: return kWritableBase + offset % kWritableBytes;
    case 1: return kReadOnlyBase + offset % kReadOnlyBytes;
    case 2: return kWritableBytes + offset % (kReadOnlyBase - kWritableBytes);  // the hole
    case 3: return kWritableBytes - 1 - offset % 64;                          // the end of a region
    case 4: return kReadOnlyBase + kReadOnlyBytes - 1 - offset % 64;
    case 5: return ~std::uint64_t{0} - offset;                                // near 2^64
    case 6: return kTables + (offset % 64) * 16;                              // an indirect table
    default: return in.take<std::uint64_t>();
  }
}

std::uint32_t pick_length(fuzz::ByteReader& in) {
  const std::uint8_t kind = in.byte();
  switch (kind % 6) {
    case 0: return 16;
    case 1: return 1;
    case 2: return 512u * (1 + in.byte() % 16);
    case 3: return in.take<std::uint16_t>();
    case 4: return ~std::uint32_t{0} - in.byte();
    default: return in.take<std::uint32_t>();
  }
}

void write_descriptor(std::byte* at, fuzz::ByteReader& in) {
  Descriptor d{};
  d.addr = pick_address(in);
  d.len = pick_length(in);
  d.flags = in.byte() & 0x7;  // NEXT, WRITE, INDIRECT in any combination
  if (in.flag()) d.flags = in.take<std::uint16_t>();
  d.next = in.byte();
  std::memcpy(at, &d, sizeof d);
}

// Every buffer window is writable RAM (read-only regions are never fixed buffers), so inside
// one is what both directions need.
bool inside_window(const GuestMemory& memory, const ValidatedRequest& p) {
  for (const BufferWindow& w : memory.buffer_windows()) {
    if (p.host >= w.host && p.host + p.len <= w.host + w.bytes) return true;
  }
  return false;
}

bool in_writable_ram(const GuestMemory& memory, const std::byte* host) {
  const GuestRegion& r = memory.regions()[0];
  return host >= r.host && host < r.host + r.bytes;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  World& w = world();
  fuzz::ByteReader in(data, size);
  const std::uint8_t shape = in.byte();
  const std::uint32_t queue_size = 1u << (shape % 8);  // 1 .. 128
  const BlkZeroing zeroing{(shape & 0x08) != 0, (shape & 0x10) != 0, (shape & 0x20) != 0};
  const bool indirect = in.flag();

  // The guest's memory: zeroed writable region, then its descriptors, indirect tables and headers.
  std::memset(w.memory->regions()[0].host, 0, kWritableBytes);
  for (std::uint32_t i = 0; i < queue_size && !in.empty(); ++i) write_descriptor(w.host(kDesc + 16 * i), in);
  const std::uint32_t table_entries = in.byte() % 64;
  for (std::uint32_t i = 0; i < table_entries && !in.empty(); ++i) {
    // Tables may be misaligned by a few bytes (the spec allows it).
    write_descriptor(w.host(kTables + 16 * i + (i == 0 ? in.byte() % 2 * 8 : 0)), in);
  }
  const std::uint32_t headers = in.byte() % 8;
  for (std::uint32_t i = 0; i < headers && !in.empty(); ++i) {
    BlkRequestHeader h{in.byte() % 2 == 0 ? in.byte() % 16u : in.take<std::uint32_t>(), 0,
                       in.flag() ? in.take<std::uint64_t>() : in.take<std::uint16_t>() % (kDiskBytes / 512 + 8)};
    std::memcpy(w.host(pick_address(in) % (kWritableBytes - 16)), &h, sizeof h);
  }
  const std::uint32_t segments = in.byte() % 8;
  for (std::uint32_t i = 0; i < segments && !in.empty(); ++i) {
    BlkZeroingSegment z{in.flag() ? in.take<std::uint64_t>() : in.take<std::uint16_t>() % (kDiskBytes / 512 + 8),
                        in.flag() ? in.take<std::uint32_t>() : in.take<std::uint16_t>(),
                        in.flag() ? in.take<std::uint32_t>() : in.byte() % 4u};
    std::memcpy(w.host(pick_address(in) % (kWritableBytes - 16)), &z, sizeof z);
  }
  // The read-only region holds whatever it held; it must not change.
  std::vector<std::byte> before(w.memory->regions()[1].host, w.memory->regions()[1].host + kReadOnlyBytes);

  auto queue = SplitQueue::create(*w.memory, {GuestAddress{kDesc}, GuestAddress{kAvail}, GuestAddress{kUsed}, queue_size},
                                  indirect);
  RF_FUZZ_CHECK(queue.has_value(), "a queue laid out inside writable RAM is accepted");
  BlkTarget target;
  target.validation = ValidationContext{&w.policy, w.limits, w.memory.get(), kMaxTransfer,
                                        zeroing.discard || zeroing.write_zeroes ? kMaxZeroingBytes : 0};
  target.serial = "fuzz-serial";
  target.zeroing = zeroing;
  std::vector<ChainSegment> chain;
  chain.reserve(queue_size);
  std::vector<ValidatedRequest> pieces;

  while (!in.empty()) {
    const auto head = in.take<std::uint16_t>();
    auto read = queue->read_chain(static_cast<std::uint16_t>(head % (queue_size + 2)), chain);
    if (!read) continue;
    RF_FUZZ_CHECK(chain.size() <= queue_size, "a chain has at most `size` segments");
    bool writable_seen = false;
    std::uint64_t readable = 0, writable = 0;
    for (const ChainSegment& c : chain) {
      RF_FUZZ_CHECK(c.len != 0, "empty segments are dropped");
      RF_FUZZ_CHECK(!(writable_seen && !c.device_writes), "no readable segment after a writable one");
      writable_seen = writable_seen || c.device_writes;
      (c.device_writes ? writable : readable) += c.len;
    }
    const ParsedBlkRequest p = parse_blk_request(chain, target, pieces);
    RF_FUZZ_CHECK(pieces.size() <= kMaxPiecesPerRequest, "at most kMaxPiecesPerRequest pieces");
    if (p.status != nullptr) RF_FUZZ_CHECK(in_writable_ram(*w.memory, p.status), "the status byte is writable guest RAM");
    if (p.refusal != BlkRefusal::None) {
      RF_FUZZ_CHECK(pieces.empty(), "a refused request has no pieces");
      RF_FUZZ_CHECK(p.status_value != kBlkStatusOk, "a refused request says so");
      continue;
    }
    RF_FUZZ_CHECK(p.status != nullptr, "an accepted request has a status byte");
    std::uint64_t bytes = 0;
    for (const ValidatedRequest& piece : pieces) {
      if (piece.op == SqeOpcode::Fsync) {
        RF_FUZZ_CHECK(p.type == kBlkFlush && pieces.size() == 1, "FSYNC only for FLUSH, alone");
        continue;
      }
      if (piece.op == SqeOpcode::Fallocate) {
        const bool discard = p.type == kBlkDiscard;
        RF_FUZZ_CHECK(discard ? zeroing.discard : p.type == kBlkWriteZeroes && zeroing.write_zeroes,
                      "FALLOCATE only for a negotiated DISCARD or WRITE_ZEROES");
        RF_FUZZ_CHECK(piece.fallocate_mode == kPunchHoleMode || piece.fallocate_mode == kZeroRangeMode,
                      "FALLOCATE only in a mode that keeps the size");
        if (discard) RF_FUZZ_CHECK(piece.fallocate_mode == kPunchHoleMode, "DISCARD punches a hole");
        if (!discard && !zeroing.may_unmap) {
          RF_FUZZ_CHECK(piece.fallocate_mode == kZeroRangeMode, "WRITE_ZEROES deallocates only where the disk may");
        }
        RF_FUZZ_CHECK(piece.len != 0 && piece.len <= kMaxZeroingBytes, "a zeroing is 1 byte to the zeroing limit");
        RF_FUZZ_CHECK(piece.len % 512 == 0 && piece.offset % 512 == 0, "a zeroing is block-aligned");
        RF_FUZZ_CHECK(piece.offset + piece.len <= kDiskBytes, "a zeroing lies within the disk");
        RF_FUZZ_CHECK(piece.host == nullptr, "a zeroing touches no guest memory");
        continue;
      }
      RF_FUZZ_CHECK(p.type == kBlkIn || p.type == kBlkOut, "data moves only for IN and OUT");
      const bool device_writes = piece.op == SqeOpcode::ReadFixed;
      RF_FUZZ_CHECK(device_writes == (p.type == kBlkIn), "the direction matches the type");
      RF_FUZZ_CHECK(piece.len != 0 && piece.len <= kMaxTransfer, "a piece is 1 byte to the max transfer");
      RF_FUZZ_CHECK(piece.len % 512 == 0 && piece.offset % 512 == 0, "a piece is block-aligned");
      RF_FUZZ_CHECK(piece.offset + piece.len <= kDiskBytes, "a piece lies within the disk");
      RF_FUZZ_CHECK(inside_window(*w.memory, piece), "a piece lies inside one buffer window");
      bytes += piece.len;
    }
    if (p.type == kBlkIn) RF_FUZZ_CHECK(bytes == writable - 1 && readable == 16, "a read moves its data, all of it");
    if (p.type == kBlkOut) RF_FUZZ_CHECK(bytes == readable - 16 && writable == 1, "a write moves its data, all of it");
    if (p.type == kBlkGetId) RF_FUZZ_CHECK(pieces.empty(), "GET_ID is answered at once");
    if (p.type == kBlkDiscard || p.type == kBlkWriteZeroes) {
      RF_FUZZ_CHECK(writable == 1 && readable > 16 && (readable - 16) % 16 == 0 &&
                        pieces.size() == (readable - 16) / 16 && pieces.size() <= kMaxZeroingSegments,
                    "a zeroing request is whole segments, one piece each, and only a status to write");
    }
  }
  RF_FUZZ_CHECK(std::memcmp(before.data(), w.memory->regions()[1].host, kReadOnlyBytes) == 0,
                "the read-only region never changes");
  return 0;
}
