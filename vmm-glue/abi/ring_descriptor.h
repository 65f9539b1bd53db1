// The ring descriptor: what the VMM tells a guest about its device, at a fixed guest-physical
// address. docs/abi.md is the specification; this header is its only implementation, shared
// by the VMM (encode) and the freestanding guest driver (decode).
//
// Freestanding on purpose: no libc, no allocation, no exceptions, only <cstdint>/<cstddef>.
// Every field is little-endian at a fixed byte offset and is read and written one byte at a
// time, so the encoding does not depend on the host's endianness or on struct padding.
#pragma once

#include <cstddef>
#include <cstdint>

#include "abi/ring_entries.h"

namespace rf::abi {

inline constexpr std::uint64_t kDescriptorMagic = 0x31444e4952465200ULL;  // "\0RFRIND1" read as LE u64
inline constexpr std::uint16_t kVersionMajor = 1;
inline constexpr std::uint16_t kVersionMinor = 0;

inline constexpr std::uint32_t kMaxDisks = 64;
inline constexpr std::uint32_t kMaxWindows = 16384;  // one per fixed buffer, the kernel's maximum

enum class Mode : std::uint32_t {
  Passthrough = 1,  // the kernel's own ring; SQE addresses are host addresses (gpa + window bias)
  Mediated = 2,     // a ring the VMM mediates; SQE addresses are guest-physical
};

// How the guest rings its doorbell after publishing SQEs the device may be sleeping on.
enum class Doorbell : std::uint32_t {
  PlatformEventfd = 1,  // the platform's kick callback (process guests: a write to an eventfd)
};

// How the device tells the guest that completions are ready (unless the guest turned
// notifications off with kCqFlagNotifyDisabled and polls).
enum class Notify : std::uint32_t {
  PlatformEventfd = 1,  // the platform's wait callback returns (process guests: an eventfd read)
};

// Ring flag bits, identical to io_uring's so that passthrough needs no translation.
inline constexpr std::uint32_t kSqFlagNeedWakeup = 1u << 0;     // IORING_SQ_NEED_WAKEUP
inline constexpr std::uint32_t kCqFlagNotifyDisabled = 1u << 0;  // IORING_CQ_EVENTFD_DISABLED

inline constexpr std::uint32_t kDiskReadOnly = 1u << 0;

struct RingGeometry {
  std::uint64_t sq_head = 0;  // guest-physical addresses of the ring fields
  std::uint64_t sq_tail = 0;
  std::uint64_t sq_flags = 0;
  std::uint64_t sq_dropped = 0;
  std::uint64_t sq_array = 0;  // 0: no index array (the slot is tail & mask)
  std::uint64_t sqes = 0;
  std::uint32_t sq_entries = 0;  // a power of two
  std::uint64_t cq_head = 0;
  std::uint64_t cq_tail = 0;
  std::uint64_t cq_flags = 0;
  std::uint64_t cq_overflow = 0;
  std::uint64_t cqes = 0;
  std::uint32_t cq_entries = 0;  // a power of two, >= sq_entries
};

struct DiskEntry {
  std::uint32_t fixed_file = 0;  // the fixed-file index SQEs name (with IOSQE_FIXED_FILE)
  std::uint32_t flags = 0;       // kDiskReadOnly
  std::uint64_t size_bytes = 0;
  std::uint32_t logical_block_size = 0;  // offsets and lengths must be multiples of it
  std::uint32_t max_transfer = 0;        // the largest length one SQE may carry
};

// A range of guest RAM the device can do I/O to and from: one fixed buffer.
struct WindowEntry {
  std::uint64_t gpa = 0;
  std::uint64_t length = 0;
  std::uint32_t buffer_index = 0;  // the SQE's buf_index for I/O inside this window
  std::uint32_t flags = 0;         // reserved, 0
  std::uint64_t host_bias = 0;     // passthrough: SQE addr = gpa + host_bias (mod 2^64); mediated: 0
};

struct DescriptorHeader {
  std::uint16_t version_major = kVersionMajor;
  std::uint16_t version_minor = kVersionMinor;
  std::uint32_t total_bytes = 0;  // the header and both tables
  Mode mode = Mode::Passthrough;
  std::uint64_t device_window_gpa = 0;  // descriptor + rings: guest RAM the guest must not use for data
  std::uint64_t device_window_bytes = 0;
  RingGeometry ring;
  Doorbell doorbell = Doorbell::PlatformEventfd;
  Notify notify = Notify::PlatformEventfd;
  std::uint32_t disk_count = 0;
  std::uint32_t window_count = 0;
  // Filled in by decode_header from the bytes (encode writes this version's sizes).
  std::uint32_t header_bytes = 0;
  std::uint32_t disk_entry_bytes = 0;
  std::uint32_t window_entry_bytes = 0;
};

// Byte offsets (v1.0). Entries are read with the entry sizes the header gives, so a newer
// minor version may append fields to an entry without breaking older guests.
inline constexpr std::size_t kHeaderBytes = 192;
inline constexpr std::size_t kDiskEntryBytes = 32;
inline constexpr std::size_t kWindowEntryBytes = 32;

inline constexpr std::size_t descriptor_bytes(std::uint32_t disks, std::uint32_t windows) {
  return kHeaderBytes + std::size_t{disks} * kDiskEntryBytes + std::size_t{windows} * kWindowEntryBytes;
}
inline constexpr std::size_t kMaxDescriptorBytes = descriptor_bytes(kMaxDisks, kMaxWindows);

enum class DecodeStatus : std::uint32_t {
  Ok = 0,
  TooSmall,          // the buffer cannot hold the header or the tables it announces
  BadMagic,
  NewerMajor,        // written for a newer major version: refuse to run
  BadMode,
  BadGeometry,       // entries not a power of two, CQ smaller than SQ, a field address of 0
  BadEntrySize,      // an entry size smaller than this version's
  TooManyEntries,
  BadDoorbell,
  BadDisk,           // zero size or block size, block size not a power of two, ...
  BadWindow,         // zero length or gpa + length overflows
};

const char* decode_status_name(DecodeStatus status);

// Writes the descriptor into `out` (at least descriptor_bytes(...) bytes). Returns the bytes
// written, or 0 if `out_bytes` is too small or a count exceeds its maximum.
std::size_t encode_descriptor(const DescriptorHeader& header, const DiskEntry* disks, const WindowEntry* windows,
                              unsigned char* out, std::size_t out_bytes);

// Reads the header from `in` (a private copy of the descriptor: decode never reads the same
// byte twice, but the caller decides where the bytes come from) and validates it.
DecodeStatus decode_header(const unsigned char* in, std::size_t in_bytes, DescriptorHeader& header);
// Reads and validates entry `i` of a table; `header` is what decode_header returned for the
// same bytes (it bounds `i` and locates the tables).
DecodeStatus decode_disk(const unsigned char* in, const DescriptorHeader& header, std::uint32_t i, DiskEntry& disk);
DecodeStatus decode_window(const unsigned char* in, const DescriptorHeader& header, std::uint32_t i,
                           WindowEntry& window);

}  // namespace rf::abi
