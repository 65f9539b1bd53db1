// The reference guest block driver. Freestanding: it touches only guest memory (through
// Platform::memory_base) and calls only Platform::kick and Platform::wait. It makes no system
// call, allocation or libc call, so the same code runs in a process guest under a seccomp
// filter that allows nothing but the doorbell and the notification, and in a KVM guest.
//
// It discovers everything from the ring descriptor (vmm-glue/abi/ring_descriptor.h): where the
// rings are, the disks, and the buffer windows that I/O must target. It keeps at most depth()
// requests in flight, so the completion queue can never overflow.
#pragma once

#include <cstdint>

#include "abi/ring_descriptor.h"
#include "abi/ring_entries.h"
#include "guest/platform.h"

namespace rf::guest {

inline constexpr std::uint32_t kDriverMaxWindows = 64;  // 64 windows of up to 1 GiB each

enum class AttachStatus : std::uint32_t {
  Ok = 0,
  DescriptorOutsideMemory,
  Decode,              // see decode_status()
  FieldOutsideMemory,  // a ring field or array the descriptor names is not in guest memory
  TooManyWindows,      // more buffer windows than kDriverMaxWindows
  RingInconsistent,    // the ring's head and tail are more than its size apart
};

enum class Op : std::uint8_t { Read, Write, Flush };

enum class RequestStatus : std::uint32_t {
  Ok = 0,
  QueueFull,     // depth() requests in flight or no free SQ slot: reap, then retry
  NoSuchDisk,
  ReadOnlyDisk,  // a write to a read-only disk
  OutOfRange,    // offset + length past the end of the disk
  Misaligned,    // offset or length not a multiple of the logical block size, or length 0
  TooLong,       // more than the disk's max_transfer
  NoWindow,      // the buffer is not inside one buffer window
};

struct Request {
  Op op = Op::Read;
  std::uint32_t disk = 0;
  std::uint64_t offset = 0;      // bytes into the disk
  std::uint64_t buffer_gpa = 0;  // guest-physical address of the data
  std::uint32_t length = 0;
  std::uint64_t tag = 0;  // returned in the completion
};

struct Completion {
  std::uint64_t tag = 0;
  std::int32_t result = 0;  // bytes moved, 0 for a flush, or -errno
};

struct DriverCounters {
  std::uint64_t submitted = 0;
  std::uint64_t completed = 0;
  std::uint64_t kicks = 0;  // doorbells rung (the device was asleep)
  std::uint64_t waits = 0;  // times the driver blocked in Platform::wait
};

class Driver {
 public:
  // Reads the descriptor at `descriptor_gpa` once and checks everything it names.
  AttachStatus attach(const Platform& platform, std::uint64_t descriptor_gpa);
  abi::DecodeStatus decode_status() const { return decode_status_; }

  const abi::DescriptorHeader& header() const { return header_; }
  std::uint32_t disk_count() const { return header_.disk_count; }
  const abi::DiskEntry& disk(std::uint32_t i) const { return disks_[i]; }
  std::uint32_t window_count() const { return window_count_; }
  const abi::WindowEntry& window(std::uint32_t i) const { return windows_[i]; }

  // Requests in flight at most (the SQ size; the CQ is at least as large).
  std::uint32_t depth() const { return header_.ring.sq_entries; }
  std::uint32_t in_flight() const { return in_flight_; }

  // Checks `request` against the disk and the windows and writes its SQE; it reaches the
  // device at the next submit().
  RequestStatus queue(const Request& request);
  // Writes `sqe` as it is, with no checks, for tests that play a hostile guest. The SQE still
  // counts against depth().
  RequestStatus queue_raw(const abi::GuestSqe& sqe);
  // Publishes queued SQEs and rings the doorbell if the device sleeps. Returns how many.
  std::uint32_t submit();

  // Takes up to `max` completions without blocking.
  std::uint32_t reap(Completion* out, std::uint32_t max);
  // Takes at least one completion, blocking in Platform::wait with notifications on; returns
  // 0 only when nothing is in flight.
  std::uint32_t reap_wait(Completion* out, std::uint32_t max);
  // Notifications off (kCqFlagNotifyDisabled) for a guest that polls with reap().
  void set_notifications(bool enabled);

  const DriverCounters& counters() const { return counters_; }
  // The address and buffer index an SQE carries for data at [gpa, gpa + len): gpa + the
  // window's host bias in passthrough, gpa in mediated mode. False if no window holds it all.
  bool device_address(std::uint64_t gpa, std::uint32_t len, std::uint64_t& addr, std::uint16_t& buf_index) const;
  // The driver's pointer to guest memory [gpa, gpa + bytes), or null if it is not all inside
  // the memory the platform gave; for code that fills and checks data buffers.
  unsigned char* guest_pointer(std::uint64_t gpa, std::uint64_t bytes) const;

 private:
  template <typename T>
  T* at(std::uint64_t gpa) const;
  bool in_memory(std::uint64_t gpa, std::uint64_t bytes) const;
  std::uint32_t sq_space() const;
  abi::GuestSqe* next_sqe();

  Platform platform_{};
  abi::DecodeStatus decode_status_ = abi::DecodeStatus::Ok;
  abi::DescriptorHeader header_{};
  abi::DiskEntry disks_[abi::kMaxDisks]{};
  abi::WindowEntry windows_[kDriverMaxWindows]{};
  std::uint32_t window_count_ = 0;

  std::uint32_t* sq_head_ = nullptr;  // written by the device
  std::uint32_t* sq_tail_ = nullptr;
  std::uint32_t* sq_flags_ = nullptr;
  std::uint32_t* sq_array_ = nullptr;  // null without an index array
  abi::GuestSqe* sqes_ = nullptr;
  std::uint32_t* cq_head_ = nullptr;
  std::uint32_t* cq_tail_ = nullptr;  // written by the device
  std::uint32_t* cq_flags_ = nullptr;
  abi::GuestCqe* cqes_ = nullptr;
  std::uint32_t sq_mask_ = 0;
  std::uint32_t cq_mask_ = 0;
  std::uint32_t sq_local_tail_ = 0;  // queued, maybe not yet published
  std::uint32_t cq_local_head_ = 0;
  std::uint32_t in_flight_ = 0;
  DriverCounters counters_{};
};

const char* attach_status_name(AttachStatus status);
const char* request_status_name(RequestStatus status);

}  // namespace rf::guest
