// InflightRegion: the vhost-user inflight region (VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD), the
// shared memory in which each virtqueue records the requests the back-end has taken and not
// answered (virtio/inflight_split.h). The back-end makes it on GET_INFLIGHT_FD; the front-end
// keeps the fd and hands it to the next back-end with SET_INFLIGHT_FD after a reconnect, which is
// how a back-end started after a crash learns what to resubmit.
//
// GUEST-CONTROLLED (front-end): SET_INFLIGHT_FD's sizes and fd. The geometry must be one this
// back-end would have made (at most --queues queues of a split queue's size, the region's exact
// size), the fd a memfd at least that long and sealed against shrinking, so that no truncation
// can turn an access into SIGBUS. Its contents are checked as they are read (inflight_split.h).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "util/mmap_region.h"
#include "util/result.h"
#include "util/unique_fd.h"
#include "virtio/blk_queue.h"

namespace rf::vhost_user {

// GET_INFLIGHT_FD / SET_INFLIGHT_FD's payload (VhostUserInflight, padded to 8 bytes as QEMU sends it).
struct InflightMessage {
  std::uint64_t mmap_size;
  std::uint64_t mmap_offset;
  std::uint16_t num_queues;
  std::uint16_t queue_size;
  std::uint32_t padding;
};
static_assert(sizeof(InflightMessage) == 24);

class InflightRegion {
 public:
  // A new, zeroed region for `num_queues` (1..max_queues) queues of `queue_size` descriptors.
  static Result<InflightRegion, std::string> create(const InflightMessage& asked, unsigned max_queues);
  // The region a front-end hands back (SET_INFLIGHT_FD), checked as the header comment says.
  static Result<InflightRegion, std::string> adopt(const InflightMessage& given, UniqueFd fd, unsigned max_queues);

  // GET_INFLIGHT_FD's answer (with fd()).
  InflightMessage message() const;
  int fd() const { return fd_.get(); }
  // Queue `index`'s part, for a queue of `size` descriptors; nullopt when the region has no part
  // for it. An error when the queue is larger than the region's parts.
  Result<std::optional<virtio::BlkQueueConfig::InflightPart>, std::string> part(unsigned index, std::uint32_t size) const;

 private:
  InflightRegion() = default;
  UniqueFd fd_;
  std::shared_ptr<MmapRegion> map_;
  std::uint16_t num_queues_ = 0;
  std::uint16_t queue_size_ = 0;
};

}  // namespace rf::vhost_user
