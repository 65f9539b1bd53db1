#include "vhost_user/disk_lease.h"

#include <fmt/format.h>

namespace rf::vhost_user {

DiskLease::DiskLease(Disk first)
    : options_(first.options()),
      size_bytes_(first.size_bytes()),
      logical_block_size_(first.logical_block_size()),
      read_only_(first.read_only()),
      zeroing_(first.zeroing()),
      path_(first.path()) {
  options_.lock = true;
}

Result<const Disk*, std::string> DiskLease::acquire() {
  if (open_) return &*open_;
  auto disk = Disk::open(path_, options_);
  if (!disk) return unexpected(fmt::format("opening the disk for the guest: {}", disk.error().message));
  if (disk->size_bytes() != size_bytes_ || disk->logical_block_size() != logical_block_size_) {
    return unexpected(fmt::format("the disk {} is now {} bytes in {}-byte blocks; the guest was told {} in {}: restart the "
                                  "back-end to serve it as it is", path_, disk->size_bytes(), disk->logical_block_size(),
                                  size_bytes_, logical_block_size_));
  }
  open_.emplace(std::move(*disk));
  return &*open_;
}

}  // namespace rf::vhost_user
