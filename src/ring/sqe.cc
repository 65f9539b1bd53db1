#include "ring/sqe.h"

#include <cstdint>

#include "util/address.h"

namespace rf {

namespace {

Sqe rw(SqeOpcode op, FileRef file, std::uint64_t addr, std::uint32_t len, std::uint64_t offset) {
  Sqe sqe;
  sqe.opcode = op;
  sqe.fd = file.fd_field();
  sqe.flags = file.is_fixed() ? sqe_flag::kFixedFile : 0;
  sqe.addr = addr;
  sqe.len = len;
  sqe.off = offset;
  return sqe;
}

}  // namespace

Sqe Sqe::read_fixed(FileRef file, void* buf, std::uint32_t len, std::uint64_t offset, BufferIndex index) {
  Sqe sqe = rw(SqeOpcode::ReadFixed, file, address_of(buf), len, offset);
  sqe.buf_index = index.value;
  return sqe;
}

Sqe Sqe::write_fixed(FileRef file, const void* buf, std::uint32_t len, std::uint64_t offset, BufferIndex index) {
  Sqe sqe = rw(SqeOpcode::WriteFixed, file, address_of(buf), len, offset);
  sqe.buf_index = index.value;
  return sqe;
}

Sqe Sqe::fsync(FileRef file) { return rw(SqeOpcode::Fsync, file, 0, 0, 0); }

Sqe Sqe::fallocate(FileRef file, std::uint64_t offset, std::uint64_t len, std::uint32_t mode) {
  return rw(SqeOpcode::Fallocate, file, len, mode, offset);
}

Sqe Sqe::readv(FileRef file, const iovec* iov, std::uint32_t count, std::uint64_t offset) {
  return rw(SqeOpcode::Readv, file, address_of(iov), count, offset);
}

Sqe Sqe::writev(FileRef file, const iovec* iov, std::uint32_t count, std::uint64_t offset) {
  return rw(SqeOpcode::Writev, file, address_of(iov), count, offset);
}

}  // namespace rf
