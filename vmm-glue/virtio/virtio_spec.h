// The parts of the virtio 1.x specification the virtio-blk back-end speaks: split-virtqueue
// layouts, feature bits, and virtio-blk's request header, request types, status codes and
// configuration space. All fields are little-endian, as VIRTIO_F_VERSION_1 requires (the only
// kind of guest this back-end offers itself to); x86-64 hosts need no byte swapping.
#pragma once

#include <cstddef>
#include <cstdint>

namespace rf::virtio {

// Device-independent feature bits.
inline constexpr unsigned kFeatureIndirectDesc = 28;  // VIRTIO_RING_F_INDIRECT_DESC
inline constexpr unsigned kFeatureEventIdx = 29;      // VIRTIO_RING_F_EVENT_IDX
inline constexpr unsigned kFeatureVersion1 = 32;      // VIRTIO_F_VERSION_1

// virtio-blk feature bits.
inline constexpr unsigned kBlkFeatureSizeMax = 1;
inline constexpr unsigned kBlkFeatureSegMax = 2;
inline constexpr unsigned kBlkFeatureReadOnly = 5;
inline constexpr unsigned kBlkFeatureBlkSize = 6;
inline constexpr unsigned kBlkFeatureFlush = 9;
inline constexpr unsigned kBlkFeatureMultiQueue = 12;
inline constexpr unsigned kBlkFeatureDiscard = 13;
inline constexpr unsigned kBlkFeatureWriteZeroes = 14;

constexpr std::uint64_t feature_bit(unsigned bit) { return std::uint64_t{1} << bit; }

// Split virtqueue descriptor (virtq_desc).
struct Descriptor {
  std::uint64_t addr;
  std::uint32_t len;
  std::uint16_t flags;
  std::uint16_t next;
};
static_assert(sizeof(Descriptor) == 16);
inline constexpr std::uint16_t kDescNext = 1;
inline constexpr std::uint16_t kDescWrite = 2;     // device-writable
inline constexpr std::uint16_t kDescIndirect = 4;  // addr/len name a table of descriptors

// virtq_used_elem.
struct UsedElement {
  std::uint32_t id;
  std::uint32_t len;
};
static_assert(sizeof(UsedElement) == 8);

inline constexpr std::uint16_t kAvailNoInterrupt = 1;  // VRING_AVAIL_F_NO_INTERRUPT
inline constexpr std::uint32_t kMaxQueueSize = 32768;  // the spec's largest split queue

// Byte sizes of a split queue's three parts for `size` entries, with the event-index words.
constexpr std::uint64_t descriptor_table_bytes(std::uint32_t size) { return std::uint64_t{16} * size; }
constexpr std::uint64_t avail_ring_bytes(std::uint32_t size) { return 6 + std::uint64_t{2} * size; }
constexpr std::uint64_t used_ring_bytes(std::uint32_t size) { return 6 + std::uint64_t{8} * size; }

// virtio-blk request types and status codes.
inline constexpr std::uint32_t kBlkIn = 0;
inline constexpr std::uint32_t kBlkOut = 1;
inline constexpr std::uint32_t kBlkFlush = 4;
inline constexpr std::uint32_t kBlkGetId = 8;
inline constexpr std::uint32_t kBlkDiscard = 11;
inline constexpr std::uint32_t kBlkWriteZeroes = 13;
inline constexpr std::uint8_t kBlkStatusOk = 0;
inline constexpr std::uint8_t kBlkStatusIoErr = 1;
inline constexpr std::uint8_t kBlkStatusUnsupported = 2;
inline constexpr std::uint64_t kSectorBytes = 512;  // `sector` is always in 512-byte units
inline constexpr std::uint32_t kBlkIdBytes = 20;    // GET_ID's serial string

// virtio_blk_outhdr.
struct BlkRequestHeader {
  std::uint32_t type;
  std::uint32_t reserved;
  std::uint64_t sector;
};
static_assert(sizeof(BlkRequestHeader) == 16);

// virtio_blk_discard_write_zeroes: DISCARD's and WRITE_ZEROES's data is an array of these.
struct BlkZeroingSegment {
  std::uint64_t sector;
  std::uint32_t num_sectors;
  std::uint32_t flags;
};
static_assert(sizeof(BlkZeroingSegment) == 16);
inline constexpr std::uint32_t kBlkZeroingFlagUnmap = 1;  // WRITE_ZEROES only: the device may deallocate

// virtio_blk_config, as far as this back-end fills it in (later fields read as zero).
struct BlkConfig {
  std::uint64_t capacity;  // in 512-byte sectors
  std::uint32_t size_max;
  std::uint32_t seg_max;
  std::uint16_t cylinders;
  std::uint8_t heads;
  std::uint8_t sectors;
  std::uint32_t blk_size;
  std::uint8_t physical_block_exp;
  std::uint8_t alignment_offset;
  std::uint16_t min_io_size;
  std::uint32_t opt_io_size;
  std::uint8_t writeback;
  std::uint8_t unused0;
  std::uint16_t num_queues;
  std::uint32_t max_discard_sectors;
  std::uint32_t max_discard_seg;
  std::uint32_t discard_sector_alignment;
  std::uint32_t max_write_zeroes_sectors;
  std::uint32_t max_write_zeroes_seg;
  std::uint8_t write_zeroes_may_unmap;
  std::uint8_t unused1[3];
};
// 60 bytes of fields; sizeof is 64 with the tail padding the uint64_t brings, read as zeros.
static_assert(offsetof(BlkConfig, unused1) + 3 == 60);
static_assert(offsetof(BlkConfig, blk_size) == 20);
static_assert(offsetof(BlkConfig, num_queues) == 34);

}  // namespace rf::virtio
