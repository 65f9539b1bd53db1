// DiskLease: the disk a vhost-user back-end serves, open only while a guest's queues run. Open
// means locked (disk/disk.h: exclusively when writable) and, for an image, behind a loop device of
// its own; closed, neither. So two back-ends can be set up on one image, and whichever runs a
// guest holds it: a live migration's source releases it when QEMU stops its queues at the
// switch-over, and the destination takes it when QEMU starts them there (waiting up to a second
// for the source's loop device to go).
//
// What the guest is told (size, block size, read-only, how it can be zeroed) comes from the disk
// as the back-end opened it at start; a disk that is another size or block size when it is opened
// again is refused with the reason.
#pragma once

#include <optional>
#include <string>

#include "disk/disk.h"
#include "util/result.h"

namespace rf::vhost_user {

class DiskLease {
 public:
  // `first`: the disk as opened at start (with its lock, or without it for a migration's
  // target); its facts are kept and it is closed.
  explicit DiskLease(Disk first);

  std::uint64_t size_bytes() const { return size_bytes_; }
  std::uint32_t logical_block_size() const { return logical_block_size_; }
  bool read_only() const { return read_only_; }
  DiskZeroing zeroing() const { return zeroing_; }
  const std::string& path() const { return path_; }

  // The disk, opened (and locked) again if it is not open now.
  Result<const Disk*, std::string> acquire();
  // Closes it: its loop device goes, and with it the lock, once nothing else holds a handle.
  void release() { open_.reset(); }
  bool held() const { return open_.has_value(); }

 private:
  DiskOptions options_;  // the first open's, with the lock
  std::optional<Disk> open_;
  std::uint64_t size_bytes_;
  std::uint32_t logical_block_size_;
  bool read_only_;
  DiskZeroing zeroing_;
  std::string path_;
};

}  // namespace rf::vhost_user
