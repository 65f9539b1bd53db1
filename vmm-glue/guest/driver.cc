#include "guest/driver.h"

namespace rf::guest {

namespace {

// The ring protocol's memory ordering, with compiler builtins (no <atomic> library calls):
// the device's indices are read with acquire, ours are published with release.
std::uint32_t load_acquire(const std::uint32_t* p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
std::uint32_t load_relaxed(const std::uint32_t* p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
void store_release(std::uint32_t* p, std::uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
void store_relaxed(std::uint32_t* p, std::uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }

bool multiple_of(std::uint64_t value, std::uint32_t power_of_two) { return (value & (power_of_two - 1)) == 0; }

}  // namespace

const char* attach_status_name(AttachStatus status) {
  switch (status) {
    case AttachStatus::Ok: return "ok";
    case AttachStatus::DescriptorOutsideMemory: return "the descriptor address is outside guest memory";
    case AttachStatus::Decode: return "the descriptor is invalid";
    case AttachStatus::FieldOutsideMemory: return "a ring field lies outside guest memory or is misaligned";
    case AttachStatus::TooManyWindows: return "more buffer windows than this driver supports";
    case AttachStatus::RingInconsistent: return "the ring's head and tail are inconsistent";
  }
  return "unknown";
}

const char* request_status_name(RequestStatus status) {
  switch (status) {
    case RequestStatus::Ok: return "ok";
    case RequestStatus::QueueFull: return "queue full";
    case RequestStatus::NoSuchDisk: return "no such disk";
    case RequestStatus::ReadOnlyDisk: return "disk is read-only";
    case RequestStatus::OutOfRange: return "past the end of the disk";
    case RequestStatus::Misaligned: return "not aligned to the logical block size";
    case RequestStatus::TooLong: return "longer than the disk's max transfer";
    case RequestStatus::NoWindow: return "buffer outside every buffer window";
  }
  return "unknown";
}

bool Driver::in_memory(std::uint64_t gpa, std::uint64_t bytes) const {
  return gpa < platform_.memory_bytes && bytes <= platform_.memory_bytes - gpa;
}

template <typename T>
T* Driver::at(std::uint64_t gpa) const {
  // SAFETY: callers check in_memory(gpa, sizeof(T) * n) first; memory_base + gpa is then inside
  // the guest memory the platform mapped (or identity-maps) for the driver.
  return reinterpret_cast<T*>(platform_.memory_base + gpa);
}

unsigned char* Driver::guest_pointer(std::uint64_t gpa, std::uint64_t bytes) const {
  return in_memory(gpa, bytes) ? at<unsigned char>(gpa) : nullptr;
}

AttachStatus Driver::attach(const Platform& platform, std::uint64_t descriptor_gpa) {
  platform_ = platform;
  if (!in_memory(descriptor_gpa, abi::kHeaderBytes)) return AttachStatus::DescriptorOutsideMemory;
  const unsigned char* bytes = at<const unsigned char>(descriptor_gpa);
  const std::uint64_t available = platform_.memory_bytes - descriptor_gpa;
  const std::uint64_t limit = available < abi::kMaxDescriptorBytes ? available : abi::kMaxDescriptorBytes;

  decode_status_ = abi::decode_header(bytes, static_cast<std::size_t>(limit), header_);
  if (decode_status_ != abi::DecodeStatus::Ok) return AttachStatus::Decode;
  for (std::uint32_t i = 0; i < header_.disk_count; ++i) {
    decode_status_ = abi::decode_disk(bytes, header_, i, disks_[i]);
    if (decode_status_ != abi::DecodeStatus::Ok) return AttachStatus::Decode;
  }
  if (header_.window_count > kDriverMaxWindows) return AttachStatus::TooManyWindows;
  for (std::uint32_t i = 0; i < header_.window_count; ++i) {
    decode_status_ = abi::decode_window(bytes, header_, i, windows_[i]);
    if (decode_status_ != abi::DecodeStatus::Ok) return AttachStatus::Decode;
  }
  window_count_ = header_.window_count;

  const abi::RingGeometry& g = header_.ring;
  const std::uint64_t u32 = sizeof(std::uint32_t);
  const std::uint64_t u32_fields[] = {g.sq_head, g.sq_tail, g.sq_flags, g.cq_head, g.cq_tail, g.cq_flags};
  for (std::uint64_t field : u32_fields) {
    if (!in_memory(field, u32) || !multiple_of(field, 4)) return AttachStatus::FieldOutsideMemory;
  }
  // Entries are powers of two <= 2^31 (decode_header checked), so these products fit 64 bits.
  if (!in_memory(g.sqes, std::uint64_t{g.sq_entries} * abi::kSqeBytes) || !multiple_of(g.sqes, 8) ||
      !in_memory(g.cqes, std::uint64_t{g.cq_entries} * abi::kCqeBytes) || !multiple_of(g.cqes, 8)) {
    return AttachStatus::FieldOutsideMemory;
  }
  if (g.sq_array != 0 && (!in_memory(g.sq_array, std::uint64_t{g.sq_entries} * u32) || !multiple_of(g.sq_array, 4))) {
    return AttachStatus::FieldOutsideMemory;
  }
  sq_head_ = at<std::uint32_t>(g.sq_head);
  sq_tail_ = at<std::uint32_t>(g.sq_tail);
  sq_flags_ = at<std::uint32_t>(g.sq_flags);
  sq_array_ = g.sq_array != 0 ? at<std::uint32_t>(g.sq_array) : nullptr;
  sqes_ = at<abi::GuestSqe>(g.sqes);
  cq_head_ = at<std::uint32_t>(g.cq_head);
  cq_tail_ = at<std::uint32_t>(g.cq_tail);
  cq_flags_ = at<std::uint32_t>(g.cq_flags);
  cqes_ = at<abi::GuestCqe>(g.cqes);
  sq_mask_ = g.sq_entries - 1;
  cq_mask_ = g.cq_entries - 1;

  // Start where the device is (the VMM may have used the ring for its self-check). A freshly
  // attached driver owns no request, so anything already in the CQ is dropped.
  sq_local_tail_ = load_relaxed(sq_tail_);
  if (sq_local_tail_ - load_acquire(sq_head_) > g.sq_entries) return AttachStatus::RingInconsistent;
  cq_local_head_ = load_acquire(cq_tail_);
  store_release(cq_head_, cq_local_head_);
  in_flight_ = 0;
  counters_ = DriverCounters{};
  return AttachStatus::Ok;
}

std::uint32_t Driver::sq_space() const {
  // Counted from the device's SQ head, not from completions: an SQPOLL kernel thread posts a
  // batch's completions before it advances the head.
  const std::uint32_t used = sq_local_tail_ - load_acquire(sq_head_);
  return used >= header_.ring.sq_entries ? 0 : header_.ring.sq_entries - used;
}

abi::GuestSqe* Driver::next_sqe() {
  if (in_flight_ >= depth() || sq_space() == 0) return nullptr;
  const std::uint32_t slot = sq_local_tail_ & sq_mask_;
  if (sq_array_ != nullptr) sq_array_[slot] = slot;
  abi::GuestSqe* sqe = &sqes_[slot];
  ++sq_local_tail_;
  ++in_flight_;
  return sqe;
}

bool Driver::device_address(std::uint64_t gpa, std::uint32_t len, std::uint64_t& addr,
                            std::uint16_t& buf_index) const {
  for (std::uint32_t i = 0; i < window_count_; ++i) {
    const abi::WindowEntry& w = windows_[i];
    if (gpa < w.gpa) continue;
    const std::uint64_t offset = gpa - w.gpa;
    if (offset >= w.length || len > w.length - offset) continue;
    // Passthrough: the kernel checks host addresses, so the SQE carries gpa + bias (mod 2^64).
    addr = header_.mode == abi::Mode::Passthrough ? gpa + w.host_bias : gpa;
    buf_index = static_cast<std::uint16_t>(w.buffer_index);
    return true;
  }
  return false;
}

RequestStatus Driver::queue(const Request& r) {
  if (r.disk >= header_.disk_count) return RequestStatus::NoSuchDisk;
  const abi::DiskEntry& disk = disks_[r.disk];
  std::uint64_t addr = 0;
  std::uint16_t buf_index = 0;
  std::uint8_t opcode = abi::kOpFsync;
  if (r.op != Op::Flush) {
    if (r.op == Op::Write && (disk.flags & abi::kDiskReadOnly) != 0) return RequestStatus::ReadOnlyDisk;
    if (r.length == 0 || !multiple_of(r.offset, disk.logical_block_size) ||
        !multiple_of(r.length, disk.logical_block_size)) {
      return RequestStatus::Misaligned;
    }
    if (r.length > disk.max_transfer) return RequestStatus::TooLong;
    if (r.offset > disk.size_bytes || r.length > disk.size_bytes - r.offset) return RequestStatus::OutOfRange;
    if (!device_address(r.buffer_gpa, r.length, addr, buf_index)) return RequestStatus::NoWindow;
    opcode = r.op == Op::Read ? abi::kOpReadFixed : abi::kOpWriteFixed;
  }
  abi::GuestSqe* sqe = next_sqe();
  if (sqe == nullptr) return RequestStatus::QueueFull;
  // Field by field, every byte: the slot may hold an old request.
  sqe->opcode = opcode;
  sqe->flags = abi::kSqeFixedFile;
  sqe->ioprio = 0;
  sqe->fd = static_cast<std::int32_t>(disk.fixed_file);
  sqe->off = r.op == Op::Flush ? 0 : r.offset;
  sqe->addr = addr;
  sqe->len = r.op == Op::Flush ? 0 : r.length;
  sqe->op_flags = 0;
  sqe->user_data = r.tag;
  sqe->buf_index = buf_index;
  sqe->personality = 0;
  sqe->splice_fd_in = 0;
  sqe->addr3 = 0;
  sqe->pad = 0;
  return RequestStatus::Ok;
}

RequestStatus Driver::queue_raw(const abi::GuestSqe& raw) {
  abi::GuestSqe* sqe = next_sqe();
  if (sqe == nullptr) return RequestStatus::QueueFull;
  sqe->opcode = raw.opcode;
  sqe->flags = raw.flags;
  sqe->ioprio = raw.ioprio;
  sqe->fd = raw.fd;
  sqe->off = raw.off;
  sqe->addr = raw.addr;
  sqe->len = raw.len;
  sqe->op_flags = raw.op_flags;
  sqe->user_data = raw.user_data;
  sqe->buf_index = raw.buf_index;
  sqe->personality = raw.personality;
  sqe->splice_fd_in = raw.splice_fd_in;
  sqe->addr3 = raw.addr3;
  sqe->pad = raw.pad;
  return RequestStatus::Ok;
}

std::uint32_t Driver::submit() {
  const std::uint32_t published = load_relaxed(sq_tail_);
  const std::uint32_t count = sq_local_tail_ - published;
  if (count == 0) return 0;
  store_release(sq_tail_, sq_local_tail_);  // the SQEs above become visible with the tail
  counters_.submitted += count;
  // The tail store must be visible before we read the flags, or the device may go to sleep
  // between our read and its last look at the tail, and nobody wakes it (liburing does the
  // same full barrier).
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  if ((load_relaxed(sq_flags_) & abi::kSqFlagNeedWakeup) != 0) {
    ++counters_.kicks;
    platform_.kick(platform_.context);
  }
  return count;
}

std::uint32_t Driver::reap(Completion* out, std::uint32_t max) {
  const std::uint32_t tail = load_acquire(cq_tail_);
  std::uint32_t n = 0;
  while (n < max && cq_local_head_ != tail) {
    const abi::GuestCqe& cqe = cqes_[cq_local_head_ & cq_mask_];
    out[n].tag = cqe.user_data;
    out[n].result = cqe.res;
    ++n;
    ++cq_local_head_;
  }
  if (n != 0) {
    store_release(cq_head_, cq_local_head_);  // the slots are free for the device again
    in_flight_ = n > in_flight_ ? 0 : in_flight_ - n;
    counters_.completed += n;
  }
  return n;
}

std::uint32_t Driver::reap_wait(Completion* out, std::uint32_t max) {
  while (in_flight_ != 0) {
    if (const std::uint32_t n = reap(out, max); n != 0) return n;
    // Turn notifications on, then look once more: a completion posted before the flag was
    // visible did not notify, one posted after it will.
    const std::uint32_t flags = load_relaxed(cq_flags_);
    const bool were_disabled = (flags & abi::kCqFlagNotifyDisabled) != 0;
    if (were_disabled) store_relaxed(cq_flags_, flags & ~abi::kCqFlagNotifyDisabled);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    std::uint32_t n = reap(out, max);
    if (n == 0) {
      ++counters_.waits;
      platform_.wait(platform_.context);
      n = reap(out, max);
    }
    if (were_disabled) store_relaxed(cq_flags_, load_relaxed(cq_flags_) | abi::kCqFlagNotifyDisabled);
    if (n != 0) return n;
  }
  return 0;
}

void Driver::set_notifications(bool enabled) {
  const std::uint32_t flags = load_relaxed(cq_flags_);
  store_relaxed(cq_flags_, enabled ? flags & ~abi::kCqFlagNotifyDisabled : flags | abi::kCqFlagNotifyDisabled);
}

}  // namespace rf::guest
