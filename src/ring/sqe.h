// Sqe / Cqe: typed submission and completion entries. The host side builds SQEs with these;
// only submission_queue.cc turns them into the kernel's struct io_uring_sqe.
#pragma once

#include <sys/uio.h>

#include <cstdint>

#include "ring/opcodes.h"

namespace rf {

// An index into the ring's registered (fixed) files.
struct FixedFileIndex {
  std::uint32_t value = 0;
};

// An index into the ring's registered (fixed) buffers.
struct BufferIndex {
  std::uint16_t value = 0;
  friend bool operator==(BufferIndex, BufferIndex) = default;
};

// The file an SQE targets: a registered file (sets IOSQE_FIXED_FILE) or a raw descriptor.
class FileRef {
 public:
  static FileRef fixed(FixedFileIndex index) { return FileRef(static_cast<std::int32_t>(index.value), true); }
  static FileRef raw(int fd) { return FileRef(fd, false); }
  std::int32_t fd_field() const { return fd_; }
  bool is_fixed() const { return fixed_; }

 private:
  FileRef(std::int32_t fd, bool fixed) : fd_(fd), fixed_(fixed) {}
  std::int32_t fd_;
  bool fixed_;
};

struct Sqe {
  SqeOpcode opcode = SqeOpcode::Nop;
  std::uint8_t flags = 0;  // IOSQE_* (see sqe_flag::)
  std::uint16_t ioprio = 0;
  std::int32_t fd = 0;  // a descriptor, or a fixed-file index when flags has FIXED_FILE
  std::uint64_t off = 0;
  std::uint64_t addr = 0;
  std::uint32_t len = 0;
  std::uint32_t op_flags = 0;  // the per-opcode union: rw_flags, fsync_flags, ...
  std::uint64_t user_data = 0;
  std::uint16_t buf_index = 0;
  // Fields the block opcodes leave zero; probes set them to see what the kernel does with them
  // (ring/sqe_exposure.h).
  std::uint16_t personality = 0;
  std::int32_t splice_fd_in = 0;  // also file_index; 6.16+: write_stream, in the low byte
  std::uint64_t addr3 = 0;        // 6.15+: attr_ptr, for READ/WRITE with attr_type_mask
  std::uint64_t pad2 = 0;         // 6.15+: attr_type_mask

  static Sqe nop() { return Sqe{}; }
  static Sqe read_fixed(FileRef file, void* buf, std::uint32_t len, std::uint64_t offset, BufferIndex index);
  static Sqe write_fixed(FileRef file, const void* buf, std::uint32_t len, std::uint64_t offset,
                         BufferIndex index);
  static Sqe fsync(FileRef file);
  // FALLOCATE: the kernel takes the length from `addr` and the mode (FALLOC_FL_*) from `len`.
  static Sqe fallocate(FileRef file, std::uint64_t offset, std::uint64_t len, std::uint32_t mode);
  static Sqe readv(FileRef file, const iovec* iov, std::uint32_t count, std::uint64_t offset);
  static Sqe writev(FileRef file, const iovec* iov, std::uint32_t count, std::uint64_t offset);

  Sqe& with_user_data(std::uint64_t value) {
    user_data = value;
    return *this;
  }
  // Adds flags to those the constructor set (FIXED_FILE for a fixed FileRef).
  Sqe& with_flags(std::uint8_t extra) {
    flags |= extra;
    return *this;
  }
};

struct Cqe {
  std::uint64_t user_data = 0;
  std::int32_t res = 0;  // a result, or -errno
  std::uint32_t flags = 0;
};

}  // namespace rf
