#include "vhost_user/inflight_region.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "util/checked_math.h"
#include "vhost_user/sealed_file.h"
#include "virtio/inflight_split.h"
#include "virtio/virtio_spec.h"

namespace rf::vhost_user {

namespace {

// The region's size for a geometry this back-end accepts, or why it does not.
Result<std::uint64_t, std::string> region_bytes(const InflightMessage& m, unsigned max_queues, const char* request) {
  if (m.num_queues == 0 || m.num_queues > max_queues) {
    return unexpected(fmt::format("{} asks for {} queues; this device has 1 to {} (--queues)", request, m.num_queues, max_queues));
  }
  if (!is_power_of_two(m.queue_size) || m.queue_size > virtio::kMaxQueueSize) {
    return unexpected(fmt::format("{} gives queue size {}; a split queue's size is a power of two up to {}", request,
                                  m.queue_size, virtio::kMaxQueueSize));
  }
  return virtio::inflight_queue_bytes(m.queue_size) * m.num_queues;
}

std::string sys_error(const char* what) { return fmt::format("{}: {}", what, std::strerror(errno)); }

}  // namespace

Result<InflightRegion, std::string> InflightRegion::create(const InflightMessage& asked, unsigned max_queues) {
  auto bytes = region_bytes(asked, max_queues, "GET_INFLIGHT_FD");
  if (!bytes) return unexpected(std::move(bytes).error());
  InflightRegion r;
  r.fd_.reset(::memfd_create("ringfence-inflight", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!r.fd_) return unexpected(sys_error("creating the inflight region (memfd_create)"));
  if (::ftruncate(r.fd_.get(), static_cast<off_t>(*bytes)) != 0) return unexpected(sys_error("sizing the inflight region"));
  // Sealed, so that neither side can shrink it under the other's mapping.
  if (::fcntl(r.fd_.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
    return unexpected(sys_error("sealing the inflight region"));
  }
  auto map = MmapRegion::map_fd(r.fd_.get(), 0, *bytes, PROT_READ | PROT_WRITE);
  if (!map) return unexpected(fmt::format("mapping the inflight region: {}", map.error().message));
  r.map_ = std::make_shared<MmapRegion>(std::move(*map));
  r.num_queues_ = asked.num_queues;
  r.queue_size_ = asked.queue_size;
  return r;
}

Result<InflightRegion, std::string> InflightRegion::adopt(const InflightMessage& given, UniqueFd fd, unsigned max_queues) {
  auto bytes = region_bytes(given, max_queues, "SET_INFLIGHT_FD");
  if (!bytes) return unexpected(std::move(bytes).error());
  if (given.mmap_size != *bytes) {
    return unexpected(fmt::format("SET_INFLIGHT_FD gives a {}-byte region for {} queues of {}; their region is {} bytes",
                                  given.mmap_size, given.num_queues, given.queue_size, *bytes));
  }
  auto map = map_sealed_file(fd, given.mmap_offset, *bytes, "SET_INFLIGHT_FD");
  if (!map) return unexpected(std::move(map).error());
  InflightRegion r;
  r.fd_ = std::move(fd);
  r.map_ = std::make_shared<MmapRegion>(std::move(*map));
  r.num_queues_ = given.num_queues;
  r.queue_size_ = given.queue_size;
  return r;
}

InflightMessage InflightRegion::message() const {
  return InflightMessage{map_->size(), 0, num_queues_, queue_size_, 0};
}

Result<std::optional<virtio::BlkQueueConfig::InflightPart>, std::string> InflightRegion::part(unsigned index,
                                                                                               std::uint32_t size) const {
  if (index >= num_queues_) return std::optional<virtio::BlkQueueConfig::InflightPart>{};
  if (size > queue_size_) {
    return unexpected(fmt::format("queue {} has {} descriptors, more than the inflight region's {} per queue", index, size,
                                  queue_size_));
  }
  return std::optional<virtio::BlkQueueConfig::InflightPart>{
      virtio::BlkQueueConfig::InflightPart{map_, virtio::inflight_queue_bytes(queue_size_) * index, queue_size_}};
}

}  // namespace rf::vhost_user
