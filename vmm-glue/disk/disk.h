// Disk: a backing store the VMM registers as a fixed file, with the facts the guest is told
// (size, logical block size, read-only) and the mitigation for the offset bound.
//
// The kernel does not bound file offsets: a WRITE_FIXED far past the end of a regular image
// file grows the file, and in passthrough nothing but the kernel sees the SQE. So a regular
// file is never registered directly. By default it is attached to a loop device of exactly
// its size (LO_FLAGS_AUTOCLEAR, so the kernel detaches it when the last reference goes) and
// the loop device is registered: the block layer then refuses any I/O past the end (-ENOSPC).
// Block devices are registered as they are. Registering a regular file directly needs an
// explicit opt-in (OffsetBound::None) and is reported as such. docs/threat-model.md has the
// trade-off.
//
// Like QEMU's image locking, a disk holds an OFD lock on its file (the image, or the block
// device) for as long as any handle on it, or the loop device over it, lives: exclusive when it
// is writable, shared when it is read-only. Two writers, or a writer and a reader, of one image
// are refused (DiskErrc::Locked) instead of corrupting it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "util/result.h"
#include "util/unique_fd.h"

namespace rf {

enum class DiskErrc {
  Open,          // the path cannot be opened (sys_errno says why)
  Unsupported,   // not a regular file or block device
  InvalidImage,  // empty, or not a multiple of the logical block size
  LoopDevice,    // attaching the image to a loop device failed
  Locked,        // another open holds the image's lock (for writing, or this open is for writing)
};
using DiskError = Error<DiskErrc>;

enum class OffsetBound {
  LoopDevice,  // regular files go through a loop device sized to the image (the default)
  None,        // opt-in: register a regular file directly; a guest write past the end grows it
};

enum class DiskKind { BlockDevice, LoopBackedFile, UnboundedFile };

struct DiskOptions {
  bool read_only = false;
  // The OFD lock above; off only to look at a disk another process holds (a migration's target
  // back-end reads the geometry while the source still serves the guest).
  bool lock = true;
  bool direct_io = true;  // O_DIRECT (and direct I/O from the loop device to the image where it can)
  OffsetBound offset_bound = OffsetBound::LoopDevice;
};

// How the disk can be zeroed in place (virtio-blk's DISCARD and WRITE_ZEROES).
struct DiskZeroing {
  bool zero_range = false;  // fallocate(FALLOC_FL_ZERO_RANGE | KEEP_SIZE) zeroes a range
  bool punch_hole = false;  // fallocate(FALLOC_FL_PUNCH_HOLE | KEEP_SIZE) zeroes it and may deallocate
};

class Disk {
 public:
  static Result<Disk, DiskError> open(const std::string& path, const DiskOptions& options);

  // Another handle on the same disk (a dup of its descriptor): a loop device stays attached while
  // any handle lives. For a VMM that gives the same disk to one device after another.
  Result<Disk, DiskError> duplicate() const;
  // The same path opened again with the same options (a new loop device, the lock taken anew).
  Result<Disk, DiskError> reopen() const { return open(path_, options_); }

  Disk(Disk&&) noexcept = default;
  Disk& operator=(Disk&&) noexcept = default;

  // What gets registered as the fixed file (the loop device for a loop-backed image).
  int fd() const { return fd_.get(); }
  std::uint64_t size_bytes() const { return size_bytes_; }
  std::uint32_t logical_block_size() const { return logical_block_size_; }
  bool read_only() const { return read_only_; }
  DiskKind kind() const { return kind_; }
  const std::string& path() const { return path_; }
  const DiskOptions& options() const { return options_; }
  // /dev/loopN for a LoopBackedFile, empty otherwise.
  const std::string& loop_device() const { return device_path_; }
  // "/tmp/disk.img via /dev/loop3 (bounded by the block layer)" and the like.
  std::string describe() const;
  // Block devices (a loop-backed image's too): ZERO_RANGE always (the kernel writes zero pages
  // where the device cannot zero), PUNCH_HOLE where the device zeroes by itself. A read-only disk
  // and a directly registered file (whose file system was not probed) zero nothing.
  DiskZeroing zeroing() const;

 private:
  Disk() = default;
  UniqueFd fd_;
  std::uint64_t size_bytes_ = 0;
  std::uint32_t logical_block_size_ = 512;
  bool read_only_ = false;
  DiskKind kind_ = DiskKind::BlockDevice;
  std::string path_;
  DiskOptions options_;
  std::string device_path_;  // the loop device, for LoopBackedFile
  bool loop_direct_io_ = false;  // the loop device does direct I/O to the image
};

std::string_view disk_kind_label(DiskKind kind);

}  // namespace rf
