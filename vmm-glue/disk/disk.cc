#include "disk/disk.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include <fmt/format.h>

#include "disk/loop_device.h"
#include "host/block_device.h"

namespace rf {

namespace {

DiskError open_error(const std::string& path, int err, std::string_view what) {
  return DiskError{DiskErrc::Open, err, fmt::format("disk {}: {}: {}", path, what, std::strerror(err))};
}

Result<UniqueFd, DiskError> open_path(const std::string& path, int flags) {
  UniqueFd fd(::open(path.c_str(), flags | O_CLOEXEC));
  if (!fd) {
    const int err = errno;
    if (err == EINVAL && (flags & O_DIRECT) != 0) {
      return unexpected(open_error(path, err, "cannot be opened with O_DIRECT (tmpfs cannot); turn direct I/O off"));
    }
    return unexpected(open_error(path, err, "cannot be opened"));
  }
  return fd;
}

// Takes the OFD lock on `fd`'s file: shared for a read-only disk, exclusive otherwise. The lock
// belongs to the open file description, so it lasts as long as any reference to it (a dup, or a
// loop device reading the image through it). A holder that is going away may be released by the
// kernel a moment after its last close returns (the final reference of a ring's fixed file is
// dropped by a kernel worker): wait up to a second for it before refusing.
Result<void, DiskError> lock_file(int fd, const std::string& path, bool read_only) {
  struct flock lock {};
  lock.l_type = read_only ? F_RDLCK : F_WRLCK;
  lock.l_whence = SEEK_SET;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  for (;;) {
    if (::fcntl(fd, F_OFD_SETLK, &lock) == 0) return {};
    const int err = errno;
    if (err != EAGAIN && err != EACCES) return unexpected(open_error(path, err, "cannot be locked"));
    if (std::chrono::steady_clock::now() >= deadline) {
      return unexpected(DiskError{DiskErrc::Locked, err,
                                  fmt::format("disk {}: another open holds it{}: close the other user first{}", path,
                                              read_only ? " for writing" : " (this open is for writing)",
                                              read_only ? "" : ", or open both read-only")});
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

// Size and logical block size of an open block device.
Result<void, DiskError> block_geometry(int fd, const std::string& path, std::uint64_t& size, std::uint32_t& lbs) {
  const auto geometry = block_device_geometry(fd);
  if (!geometry) return unexpected(DiskError{DiskErrc::Open, geometry.error().sys_errno, fmt::format("disk {}: {}", path, geometry.error().message)});
  size = geometry->size_bytes;
  lbs = geometry->logical_block_size;
  return {};
}

}  // namespace

std::string_view disk_kind_label(DiskKind kind) {
  switch (kind) {
    case DiskKind::BlockDevice: return "block device";
    case DiskKind::LoopBackedFile: return "image file through a loop device (offsets bounded by the block layer)";
    case DiskKind::UnboundedFile: return "image file registered directly (offsets NOT bounded: a write past the end grows it)";
  }
  return "unknown";
}

Result<Disk, DiskError> Disk::open(const std::string& path, const DiskOptions& options) {
  const int access = options.read_only ? O_RDONLY : O_RDWR;
  const int direct = options.direct_io ? O_DIRECT : 0;
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) return unexpected(open_error(path, errno, "cannot be found"));

  Disk disk;
  disk.path_ = path;
  disk.options_ = options;
  disk.read_only_ = options.read_only;
  if (S_ISBLK(st.st_mode)) {
    auto fd = open_path(path, access | direct);
    if (!fd) return unexpected(std::move(fd).error());
    if (options.lock) RF_TRY_VOID(lock_file(fd->get(), path, options.read_only));
    RF_TRY_VOID(block_geometry(fd->get(), path, disk.size_bytes_, disk.logical_block_size_));
    disk.fd_ = std::move(*fd);
    disk.kind_ = DiskKind::BlockDevice;
  } else if (S_ISREG(st.st_mode)) {
    if (st.st_size <= 0 || st.st_size % 512 != 0) {
      return unexpected(DiskError{DiskErrc::InvalidImage, 0,
                                  fmt::format("disk {}: an image must be a non-empty multiple of 512 bytes (it has {})",
                                              path, st.st_size)});
    }
    if (options.offset_bound == OffsetBound::None) {
      auto fd = open_path(path, access | direct);
      if (!fd) return unexpected(std::move(fd).error());
      if (options.lock) RF_TRY_VOID(lock_file(fd->get(), path, options.read_only));
      disk.fd_ = std::move(*fd);
      disk.size_bytes_ = static_cast<std::uint64_t>(st.st_size);
      disk.kind_ = DiskKind::UnboundedFile;
    } else {
      // The loop device reads the image through this descriptor (its own reference).
      auto image = open_path(path, access);
      if (!image) return unexpected(std::move(image).error());
      // Locked before it is attached: the loop device keeps this description, and the lock.
      if (options.lock) RF_TRY_VOID(lock_file(image->get(), path, options.read_only));
      auto loop = attach_loop_device(image->get(), options.read_only, options.direct_io, access | direct);
      if (!loop) return unexpected(std::move(loop).error());
      RF_TRY_VOID(block_geometry(loop->device.get(), loop->path, disk.size_bytes_, disk.logical_block_size_));
      disk.fd_ = std::move(loop->device);
      disk.device_path_ = std::move(loop->path);
      disk.loop_direct_io_ = loop->direct_io;
      disk.kind_ = DiskKind::LoopBackedFile;
    }
  } else {
    return unexpected(DiskError{DiskErrc::Unsupported, 0,
                                fmt::format("disk {}: not a regular file or a block device", path)});
  }
  if (disk.size_bytes_ == 0 || disk.size_bytes_ % disk.logical_block_size_ != 0) {
    return unexpected(DiskError{DiskErrc::InvalidImage, 0,
                                fmt::format("disk {}: size {} is not a non-zero multiple of its block size {}", path,
                                            disk.size_bytes_, disk.logical_block_size_)});
  }
  return disk;
}

Result<Disk, DiskError> Disk::duplicate() const {
  const int fd = ::fcntl(fd_.get(), F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return unexpected(open_error(path_, errno, "cannot be duplicated"));
  Disk copy;
  copy.fd_ = UniqueFd(fd);
  copy.size_bytes_ = size_bytes_;
  copy.logical_block_size_ = logical_block_size_;
  copy.read_only_ = read_only_;
  copy.kind_ = kind_;
  copy.path_ = path_;
  copy.options_ = options_;
  copy.device_path_ = device_path_;
  copy.loop_direct_io_ = loop_direct_io_;
  return copy;
}

DiskZeroing Disk::zeroing() const {
  if (read_only_ || kind_ == DiskKind::UnboundedFile) return {};
  const auto offload = block_device_write_zeroes_max_bytes(fd_.get());
  return DiskZeroing{true, offload && *offload != 0};
}

std::string Disk::describe() const {
  std::string text = path_;
  std::string io;
  if (kind_ == DiskKind::LoopBackedFile) {
    text += " via " + device_path_;
    io = loop_direct_io_ ? ", direct I/O to the image" : ", buffered I/O to the image";
  }
  return fmt::format("{}: {}{}, {} MiB, {}-byte blocks{}", text, disk_kind_label(kind_), io, size_bytes_ >> 20,
                     logical_block_size_, read_only_ ? ", read-only" : "");
}

}  // namespace rf
