// InflightSplit: one split virtqueue's record of the requests the device has taken and not yet
// answered, kept in shared memory that outlives the back-end (vhost-user's inflight region,
// vhost-user.rst "Inflight I/O tracking"), so that a back-end started after this one died resubmits
// exactly those requests: none lost, none answered twice.
//
// The queue's part of the region has the spec's split layout: a 16-byte header (features,
// version, desc_num, last_batch_head, used_idx) and one 16-byte state per descriptor (inflight,
// next, counter). The device
//   - marks a head in flight, with the next value of its counter, before the request can reach
//     the kernel (taken());
//   - links each head it answers into the batch (used()), and once the used index that covers
//     the batch is published, clears the batch's flags and records that index (published()).
// A back-end that dies between publishing the used index and clearing the flags leaves a batch
// that recover() finds by comparing the recorded index with the used ring's.
//
// GUEST-CONTROLLED: the used ring's index that recover() is given. The region itself is written by
// a dead back-end and may be written by the front-end: recover() reads each word once and checks
// every index it follows against the queue size. What a lying region or used index can cause is
// the guest's own requests resubmitted or dropped, never more requests than the queue has slots,
// never an access outside the region.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace rf::virtio {

inline constexpr std::uint16_t kInflightVersion = 1;

struct InflightQueueHeader {
  std::uint64_t features;
  std::uint16_t version;          // 0: never written
  std::uint16_t desc_num;
  std::uint16_t last_batch_head;
  std::uint16_t used_idx;
};
static_assert(sizeof(InflightQueueHeader) == 16);

struct InflightDescState {
  std::uint8_t inflight;
  std::uint8_t padding[5];
  std::uint16_t next;
  std::uint64_t counter;
};
static_assert(sizeof(InflightDescState) == 16);

// One queue's part of the region for a queue of `queue_size` descriptors, 64-byte aligned so that
// parts never share a cache line.
constexpr std::uint64_t inflight_queue_bytes(std::uint32_t queue_size) {
  const std::uint64_t raw = sizeof(InflightQueueHeader) + std::uint64_t{queue_size} * sizeof(InflightDescState);
  return (raw + 63) / 64 * 64;
}

// What a queue starting over an existing record must do.
struct InflightRecovery {
  std::vector<std::uint16_t> resubmit;  // heads to take again, in the order they were first taken
  std::uint16_t used_idx = 0;           // where the device's used index continues
  std::uint16_t next_avail = 0;         // the avail position after the heads in flight
  std::uint32_t batch_cleared = 0;      // heads of an unfinished batch found already answered
  std::uint32_t ignored = 0;            // states that named no descriptor of this queue
  bool fresh = true;        // nothing was recorded (or nothing readable): the queue starts at its base
  bool unreadable = false;  // written, but in another version or for another queue size: started empty
};

class InflightSplit {
 public:
  // `part` points at the queue's part of a mapped region of at least inflight_queue_bytes(desc_num)
  // bytes, which must outlive this object; `desc_num` is the region's queue size.
  InflightSplit(std::byte* part, std::uint16_t desc_num);

  // Before the queue takes anything. A part never written (version 0) is set up empty; one written
  // before is read as above for a queue of `queue_size` (<= desc_num) descriptors whose used ring
  // now says `ring_used_idx`. Leaves the part consistent: the recovered heads stay marked until
  // answered.
  InflightRecovery recover(std::uint16_t ring_used_idx, std::uint32_t queue_size);

  void taken(std::uint16_t head);
  void used(std::uint16_t head);
  void published(std::uint16_t used_idx);

 private:
  InflightQueueHeader* header() const;
  InflightDescState* desc(std::uint16_t head) const;

  std::byte* part_;
  std::uint16_t desc_num_;
  std::uint64_t counter_ = 0;
  std::vector<std::uint16_t> batch_;  // heads answered since the last publish; capacity desc_num
};

}  // namespace rf::virtio
