#include "abi/ring_descriptor.h"

namespace rf::abi {

namespace {

// Field offsets of the v1.0 header (docs/abi.md has the same table).
namespace at {
constexpr std::size_t magic = 0, major = 8, minor = 10, total = 12, mode = 16, doorbell = 20, notify = 24;
constexpr std::size_t disk_count = 28, window_count = 32, disk_entry = 36, window_entry = 38;
constexpr std::size_t window_gpa = 40, window_bytes = 48;
constexpr std::size_t sq_head = 56, sq_tail = 64, sq_flags = 72, sq_dropped = 80, sq_array = 88, sqes = 96;
constexpr std::size_t sq_entries = 104, cq_entries = 108;
constexpr std::size_t cq_head = 112, cq_tail = 120, cq_flags = 128, cq_overflow = 136, cqes = 144;
constexpr std::size_t header_bytes = 152;
}  // namespace at

void put16(unsigned char* p, std::uint16_t v) {
  p[0] = static_cast<unsigned char>(v);
  p[1] = static_cast<unsigned char>(v >> 8);
}
void put32(unsigned char* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}
void put64(unsigned char* p, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}
std::uint16_t get16(const unsigned char* p) { return static_cast<std::uint16_t>(p[0] | (p[1] << 8)); }
std::uint32_t get32(const unsigned char* p) {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
std::uint64_t get64(const unsigned char* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

constexpr bool power_of_two(std::uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

bool valid_geometry(const RingGeometry& g) {
  if (!power_of_two(g.sq_entries) || !power_of_two(g.cq_entries) || g.cq_entries < g.sq_entries) return false;
  // sq_array may be 0 (no index array); every other field must be somewhere.
  const std::uint64_t fields[] = {g.sq_head, g.sq_tail, g.sq_flags, g.sq_dropped, g.sqes,
                                  g.cq_head, g.cq_tail, g.cq_flags, g.cq_overflow, g.cqes};
  for (std::uint64_t f : fields) {
    if (f == 0) return false;
  }
  return true;
}

// Where table entry `i` starts. decode_header checked that both tables fit in total_bytes
// (and in the caller's buffer), and the counts and entry sizes are small enough that this
// arithmetic cannot overflow.
std::size_t entry_offset(const DescriptorHeader& h, bool disk_table, std::uint32_t i) {
  const std::uint64_t disks_start = h.header_bytes;
  const std::uint64_t windows_start = disks_start + std::uint64_t{h.disk_count} * h.disk_entry_bytes;
  const std::uint64_t start = disk_table ? disks_start + std::uint64_t{i} * h.disk_entry_bytes
                                         : windows_start + std::uint64_t{i} * h.window_entry_bytes;
  return static_cast<std::size_t>(start);
}

}  // namespace

const char* decode_status_name(DecodeStatus status) {
  switch (status) {
    case DecodeStatus::Ok: return "ok";
    case DecodeStatus::TooSmall: return "descriptor truncated";
    case DecodeStatus::BadMagic: return "bad magic";
    case DecodeStatus::NewerMajor: return "newer major version";
    case DecodeStatus::BadMode: return "unknown mode";
    case DecodeStatus::BadGeometry: return "invalid ring geometry";
    case DecodeStatus::BadEntrySize: return "table entry size too small";
    case DecodeStatus::TooManyEntries: return "too many table entries";
    case DecodeStatus::BadDoorbell: return "unknown doorbell or notification kind";
    case DecodeStatus::BadDisk: return "invalid disk entry";
    case DecodeStatus::BadWindow: return "invalid buffer window";
  }
  return "unknown status";
}

std::size_t encode_descriptor(const DescriptorHeader& h, const DiskEntry* disks, const WindowEntry* windows,
                              unsigned char* out, std::size_t out_bytes) {
  if (h.disk_count > kMaxDisks || h.window_count > kMaxWindows) return 0;
  const std::size_t total = descriptor_bytes(h.disk_count, h.window_count);
  if (out_bytes < total) return 0;
  for (std::size_t i = 0; i < total; ++i) out[i] = 0;  // reserved bytes are zero

  put64(out + at::magic, kDescriptorMagic);
  put16(out + at::major, kVersionMajor);
  put16(out + at::minor, kVersionMinor);
  put32(out + at::total, static_cast<std::uint32_t>(total));
  put32(out + at::mode, static_cast<std::uint32_t>(h.mode));
  put32(out + at::doorbell, static_cast<std::uint32_t>(h.doorbell));
  put32(out + at::notify, static_cast<std::uint32_t>(h.notify));
  put32(out + at::disk_count, h.disk_count);
  put32(out + at::window_count, h.window_count);
  put16(out + at::disk_entry, kDiskEntryBytes);
  put16(out + at::window_entry, kWindowEntryBytes);
  put64(out + at::window_gpa, h.device_window_gpa);
  put64(out + at::window_bytes, h.device_window_bytes);
  const RingGeometry& g = h.ring;
  put64(out + at::sq_head, g.sq_head);
  put64(out + at::sq_tail, g.sq_tail);
  put64(out + at::sq_flags, g.sq_flags);
  put64(out + at::sq_dropped, g.sq_dropped);
  put64(out + at::sq_array, g.sq_array);
  put64(out + at::sqes, g.sqes);
  put32(out + at::sq_entries, g.sq_entries);
  put32(out + at::cq_entries, g.cq_entries);
  put64(out + at::cq_head, g.cq_head);
  put64(out + at::cq_tail, g.cq_tail);
  put64(out + at::cq_flags, g.cq_flags);
  put64(out + at::cq_overflow, g.cq_overflow);
  put64(out + at::cqes, g.cqes);
  put32(out + at::header_bytes, kHeaderBytes);

  unsigned char* p = out + kHeaderBytes;
  for (std::uint32_t i = 0; i < h.disk_count; ++i, p += kDiskEntryBytes) {
    put32(p + 0, disks[i].fixed_file);
    put32(p + 4, disks[i].flags);
    put64(p + 8, disks[i].size_bytes);
    put32(p + 16, disks[i].logical_block_size);
    put32(p + 20, disks[i].max_transfer);
  }
  for (std::uint32_t i = 0; i < h.window_count; ++i, p += kWindowEntryBytes) {
    put64(p + 0, windows[i].gpa);
    put64(p + 8, windows[i].length);
    put32(p + 16, windows[i].buffer_index);
    put32(p + 20, windows[i].flags);
    put64(p + 24, windows[i].host_bias);
  }
  return total;
}

DecodeStatus decode_header(const unsigned char* in, std::size_t in_bytes, DescriptorHeader& h) {
  if (in_bytes < kHeaderBytes) return DecodeStatus::TooSmall;
  if (get64(in + at::magic) != kDescriptorMagic) return DecodeStatus::BadMagic;
  h.version_major = get16(in + at::major);
  h.version_minor = get16(in + at::minor);
  // A newer minor version only appends; a newer major version may mean anything.
  if (h.version_major != kVersionMajor) return DecodeStatus::NewerMajor;
  h.total_bytes = get32(in + at::total);
  h.header_bytes = get32(in + at::header_bytes);
  h.disk_entry_bytes = get16(in + at::disk_entry);
  h.window_entry_bytes = get16(in + at::window_entry);
  h.disk_count = get32(in + at::disk_count);
  h.window_count = get32(in + at::window_count);
  if (h.header_bytes < kHeaderBytes || h.disk_entry_bytes < kDiskEntryBytes ||
      h.window_entry_bytes < kWindowEntryBytes) {
    return DecodeStatus::BadEntrySize;
  }
  if (h.disk_count > kMaxDisks || h.window_count > kMaxWindows) return DecodeStatus::TooManyEntries;
  // Bounded by the checks above: at most 2^32 + 64 * 2^16 + 16384 * 2^16, no overflow.
  const std::uint64_t needed = std::uint64_t{h.header_bytes} + std::uint64_t{h.disk_count} * h.disk_entry_bytes +
                               std::uint64_t{h.window_count} * h.window_entry_bytes;
  if (needed > h.total_bytes || h.total_bytes > in_bytes) return DecodeStatus::TooSmall;

  const std::uint32_t mode = get32(in + at::mode);
  if (mode != static_cast<std::uint32_t>(Mode::Passthrough) && mode != static_cast<std::uint32_t>(Mode::Mediated)) {
    return DecodeStatus::BadMode;
  }
  h.mode = static_cast<Mode>(mode);
  if (get32(in + at::doorbell) != static_cast<std::uint32_t>(Doorbell::PlatformEventfd) ||
      get32(in + at::notify) != static_cast<std::uint32_t>(Notify::PlatformEventfd)) {
    return DecodeStatus::BadDoorbell;
  }
  h.doorbell = Doorbell::PlatformEventfd;
  h.notify = Notify::PlatformEventfd;
  h.device_window_gpa = get64(in + at::window_gpa);
  h.device_window_bytes = get64(in + at::window_bytes);
  RingGeometry& g = h.ring;
  g.sq_head = get64(in + at::sq_head);
  g.sq_tail = get64(in + at::sq_tail);
  g.sq_flags = get64(in + at::sq_flags);
  g.sq_dropped = get64(in + at::sq_dropped);
  g.sq_array = get64(in + at::sq_array);
  g.sqes = get64(in + at::sqes);
  g.sq_entries = get32(in + at::sq_entries);
  g.cq_entries = get32(in + at::cq_entries);
  g.cq_head = get64(in + at::cq_head);
  g.cq_tail = get64(in + at::cq_tail);
  g.cq_flags = get64(in + at::cq_flags);
  g.cq_overflow = get64(in + at::cq_overflow);
  g.cqes = get64(in + at::cqes);
  if (!valid_geometry(g)) return DecodeStatus::BadGeometry;
  return DecodeStatus::Ok;
}

DecodeStatus decode_disk(const unsigned char* in, const DescriptorHeader& h, std::uint32_t i, DiskEntry& disk) {
  if (i >= h.disk_count) return DecodeStatus::TooManyEntries;
  const unsigned char* p = in + entry_offset(h, true, i);
  disk.fixed_file = get32(p + 0);
  disk.flags = get32(p + 4);
  disk.size_bytes = get64(p + 8);
  disk.logical_block_size = get32(p + 16);
  disk.max_transfer = get32(p + 20);
  if (disk.size_bytes == 0 || !power_of_two(disk.logical_block_size) || disk.max_transfer == 0 ||
      disk.max_transfer % disk.logical_block_size != 0) {
    return DecodeStatus::BadDisk;
  }
  return DecodeStatus::Ok;
}

DecodeStatus decode_window(const unsigned char* in, const DescriptorHeader& h, std::uint32_t i,
                           WindowEntry& window) {
  if (i >= h.window_count) return DecodeStatus::TooManyEntries;
  const unsigned char* p = in + entry_offset(h, false, i);
  window.gpa = get64(p + 0);
  window.length = get64(p + 8);
  window.buffer_index = get32(p + 16);
  window.flags = get32(p + 20);
  window.host_bias = get64(p + 24);
  if (window.length == 0 || window.gpa + window.length < window.gpa) return DecodeStatus::BadWindow;
  return DecodeStatus::Ok;
}

}  // namespace rf::abi
