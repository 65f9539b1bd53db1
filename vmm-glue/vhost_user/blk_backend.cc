#include "vhost_user/blk_backend.h"

#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include <fmt/format.h>

#include "device/guest_device.h"
#include "mediated/mediated_device.h"
#include "passthrough/passthrough_device.h"
#include "util/checked_math.h"
#include "vhost_user/sealed_file.h"
#include "virtio/virtio_spec.h"

namespace rf::vhost_user {

using virtio::feature_bit;

namespace {

// The segments Linux may put in one request (seg_max), and their size (size_max): a request
// then becomes at most 126 kernel I/Os plus one per buffer window it crosses, well within
// kMaxPiecesPerRequest.
constexpr std::uint32_t kSegMax = 126;
// The largest dirty log taken: one bit per 4 KiB page of 32 TiB of guest-physical addresses.
constexpr std::uint64_t kMaxLogBytes = std::uint64_t{1} << 30;
static_assert(kSegMax * 2 <= virtio::kMaxPiecesPerRequest);

template <typename T>
std::vector<std::byte> bytes_of(const T& value) {
  std::vector<std::byte> out(sizeof value);
  std::memcpy(out.data(), &value, sizeof value);
  return out;
}

// GUEST-CONTROLLED (front-end): the payload; its size is checked first.
template <typename T>
Result<T, std::string> payload_as(const Message& m) {
  if (m.payload.size() != sizeof(T)) {
    return unexpected(fmt::format("{} carries {} payload bytes; it takes {}", request_name(m.header.request), m.payload.size(), sizeof(T)));
  }
  T value;
  std::memcpy(&value, m.payload.data(), sizeof value);
  return value;
}

Result<void, std::string> expect_fds(const Message& m, std::size_t count) {
  if (m.fds.size() != count) {
    return unexpected(fmt::format("{} carries {} fds; it takes {}", request_name(m.header.request), m.fds.size(), count));
  }
  return {};
}

Result<void, std::string> expect_empty(const Message& m) {
  if (!m.payload.empty()) {
    return unexpected(fmt::format("{} carries {} payload bytes; it takes none", request_name(m.header.request), m.payload.size()));
  }
  return expect_fds(m, 0);
}

// Adds a queue's running totals (everything but what is in flight now) to `sum`; the first
// broken reason stays.
void add_totals(virtio::BlkQueueCounters& sum, const virtio::BlkQueueCounters& c) {
  sum.requests += c.requests;
  sum.completed += c.completed;
  sum.kernel_ios += c.kernel_ios;
  sum.io_errors += c.io_errors;
  for (std::size_t i = 0; i < c.refused.size(); ++i) sum.refused[i] += c.refused[i];
  sum.notifications += c.notifications;
  sum.resubmitted += c.resubmitted;
  sum.logged_pages += c.logged_pages;
  if (sum.broken == BrokenReason::None && c.broken != BrokenReason::None) {
    sum.broken = c.broken;
    sum.broken_detail = c.broken_detail;
  }
}

std::string while_running(std::uint32_t request, std::uint32_t index) {
  return fmt::format("{} for queue {} while it runs", request_name(request), index);
}

}  // namespace

virtio::BlkZeroing offered_zeroing(const DiskZeroing& can, const RestrictionSet& restrictions) {
  if (!restrictions.allows(SqeOpcode::Fallocate)) return {};
  return virtio::BlkZeroing{can.punch_hole, can.zero_range, can.punch_hole};
}

BlkBackend::BlkBackend(DiskLease& disk, BlkBackendConfig config) : disk_(disk), config_(std::move(config)) {
  offered_features_ = feature_bit(virtio::kFeatureVersion1) | feature_bit(virtio::kFeatureIndirectDesc) |
                      feature_bit(virtio::kFeatureEventIdx) | feature_bit(virtio::kBlkFeatureSizeMax) |
                      feature_bit(virtio::kBlkFeatureSegMax) | feature_bit(virtio::kBlkFeatureBlkSize) |
                      feature_bit(virtio::kBlkFeatureFlush) | feature_bit(virtio::kBlkFeatureMultiQueue) |
                      feature_bit(kFeatureProtocolFeatures) | feature_bit(kFeatureLogAll);
  if (disk_.read_only()) offered_features_ |= feature_bit(virtio::kBlkFeatureReadOnly);
  config_space_.capacity = disk_.size_bytes() / virtio::kSectorBytes;
  config_space_.size_max = kDeviceMaxTransfer;
  config_space_.seg_max = kSegMax;
  config_space_.blk_size = disk_.logical_block_size();
  config_space_.num_queues = static_cast<std::uint16_t>(config_.queues);
  zeroing_ = offered_zeroing(disk_.zeroing(), config_.restrictions);
  constexpr std::uint32_t kZeroingSectors = virtio::kMaxZeroingBytes / virtio::kSectorBytes;
  if (zeroing_.discard) {
    offered_features_ |= feature_bit(virtio::kBlkFeatureDiscard);
    config_space_.max_discard_sectors = kZeroingSectors;
    config_space_.max_discard_seg = virtio::kMaxZeroingSegments;
    config_space_.discard_sector_alignment = static_cast<std::uint32_t>(disk_.logical_block_size() / virtio::kSectorBytes);
  }
  if (zeroing_.write_zeroes) {
    offered_features_ |= feature_bit(virtio::kBlkFeatureWriteZeroes);
    config_space_.max_write_zeroes_sectors = kZeroingSectors;
    config_space_.max_write_zeroes_seg = virtio::kMaxZeroingSegments;
    config_space_.write_zeroes_may_unmap = zeroing_.may_unmap ? 1 : 0;
  }
  vrings_.resize(config_.queues);
  finished_requests_.resize(config_.queues);
}

BlkBackend::~BlkBackend() { reset(); }

std::uint64_t BlkBackend::offered_protocol_features() const {
  return feature_bit(kProtocolMultiQueue) | feature_bit(kProtocolReplyAck) | feature_bit(kProtocolConfig) |
         feature_bit(kProtocolResetDevice) | feature_bit(kProtocolInflightShmfd) | feature_bit(kProtocolLogShmfd);
}

bool BlkBackend::protocol_features_acked() const { return (acked_features_ & feature_bit(kFeatureProtocolFeatures)) != 0; }

unsigned BlkBackend::running_queues() const {
  return static_cast<unsigned>(std::count_if(vrings_.begin(), vrings_.end(), [](const Vring& v) { return v.queue != nullptr; }));
}

void BlkBackend::collect(const virtio::BlkQueue& q) { add_totals(finished_, q.counters()); }

virtio::BlkQueueCounters BlkBackend::counters() const {
  virtio::BlkQueueCounters sum = finished_;
  for (const Vring& v : vrings_) {
    if (!v.queue) continue;
    const virtio::BlkQueueCounters c = v.queue->counters();
    add_totals(sum, c);
    sum.in_flight += c.in_flight;  // only running queues have requests in flight
  }
  return sum;
}

std::vector<std::string> BlkBackend::take_recovery_notes() { return std::exchange(recovery_notes_, {}); }

std::vector<std::string> BlkBackend::describe_queues() const {
  std::vector<std::string> lines;
  for (const Vring& v : vrings_) {
    if (v.queue) lines.push_back(v.queue->describe());
  }
  return lines;
}

std::vector<int> BlkBackend::control_fds() const {
  std::vector<int> fds;
  for (const Vring& v : vrings_) {
    if (v.queue) fds.push_back(v.queue->control_fd());
  }
  return fds;
}

void BlkBackend::service_controls() {
  for (Vring& v : vrings_) {
    if (v.queue) v.queue->service_control([this](const virtio::AttachRequest& r) { return make_attached_device(r); });
  }
}

// GUEST-CONTROLLED: `request` (a private copy); every field is checked here or by the device's
// create(), which claims the window on the memory map.
virtio::AttachOutcome BlkBackend::make_attached_device(const virtio::AttachRequest& request) {
  virtio::AttachOutcome out;
  out.reply.descriptor_gpa = request.window_gpa;
  if (request.flags != 0 || !is_power_of_two(request.queue_depth) || request.queue_depth > kMaxDeviceQueueDepth) {
    out.reply.result = EINVAL;
    return out;
  }
  auto active = disk_.acquire();  // held: this queue runs
  auto handle = active ? (*active)->duplicate() : unexpected(DiskError{DiskErrc::Open, 0, ""});
  if (!handle) {
    out.reply.result = ENOMEM;
    return out;
  }
  std::vector<Disk> disks;
  disks.push_back(std::move(*handle));
  const GuestMemoryMap& memory = memory_->memory();
  const GuestAddress window{request.window_gpa};
  Result<std::uint64_t, DeviceError> needed = unexpected(DeviceError{DeviceErrc::InvalidConfig, 0, ""});
  // While QEMU logs for a migration, the ring is mediated whatever --mode says: in passthrough the
  // kernel writes guest RAM with nothing to mark it (docs/vhost-user.md, "Live migration").
  const bool mediated = *config_.attach_mode == virtio::AttachMode::Mediated || logging();
  out.reply.mode = static_cast<std::uint32_t>(mediated ? virtio::AttachMode::Mediated : *config_.attach_mode);
  if (mediated) {
    MediatedConfig c;
    c.device_window = window;
    c.queue_depth = request.queue_depth;
    c.mediator.fault = config_.attach_fault;
    c.mediator.fault_after = config_.fault_after;
    needed = MediatedDevice::window_bytes(*memory, disks.size(), c);
    if (needed && *needed <= request.window_bytes) {
      auto device = MediatedDevice::create(memory, std::move(disks), c);
      if (device) out.device = std::move(*device);
    }
  } else {
    PassthroughConfig c;
    c.device_window = window;
    c.queue_depth = request.queue_depth;
    if (config_.sqpoll_cpu) {
      c.submitter = PassthroughSubmitter::KernelSqpoll;
      c.cpu = config_.sqpoll_cpu;
      c.share_sqpoll_with = live_sqpoll_device();
    }
    needed = PassthroughDevice::window_bytes(*memory, disks.size(), c);
    if (needed && *needed <= request.window_bytes) {
      auto device = PassthroughDevice::create(memory, std::move(disks), c);
      if (device) out.device = std::move(*device);
    }
  }
  if (!needed) {
    out.reply.result = EINVAL;
    return out;
  }
  out.reply.needed_bytes = *needed;
  if (*needed > request.window_bytes) {
    out.reply.result = ENOSPC;
  } else if (!out.device) {
    // create() refused the window (not page-aligned, outside one writable region, overlapping
    // another device's) or the kernel did.
    out.reply.result = EINVAL;
  }
  return out;
}

const PassthroughDevice* BlkBackend::live_sqpoll_device() const {
  for (const Vring& v : vrings_) {
    if (!v.queue) continue;
    // SAFETY (lifetime): attached devices are made and destroyed on this thread only, so the one
    // found stays alive through the caller's create().
    const auto* device = dynamic_cast<const PassthroughDevice*>(v.queue->attached_device());
    if (device != nullptr && device->submitter() == PassthroughSubmitter::KernelSqpoll) return device;
  }
  return nullptr;
}

std::vector<std::uint64_t> BlkBackend::requests_per_queue() const {
  std::vector<std::uint64_t> out = finished_requests_;
  for (std::size_t i = 0; i < vrings_.size(); ++i) {
    if (vrings_[i].queue) out[i] += vrings_[i].queue->counters().requests;
  }
  return out;
}

std::uint16_t BlkBackend::stop_queue(Vring& v) {
  if (!v.queue) return v.base;
  const virtio::BlkQueueStopReport report = v.queue->stop(config_.drain);
  collect(*v.queue);
  finished_requests_[static_cast<std::size_t>(&v - vrings_.data())] += v.queue->counters().requests;
  v.queue.reset();
  v.base = report.next_avail;
  return report.next_avail;
}

void BlkBackend::release_disk_if_idle() {
  if (running_queues() == 0) disk_.release();
}

void BlkBackend::reset() {
  for (Vring& v : vrings_) {
    stop_queue(v);
    v = Vring{};
  }
  disk_.release();
  memory_.reset();
  inflight_.reset();
  log_.reset();
  acked_features_ = 0;
  acked_protocol_features_ = 0;
}

template <typename T>
Result<BlkBackend::VringMessage<T>, std::string> BlkBackend::vring_message(const Message& m) const {
  RF_TRY_VOID(expect_fds(m, 0));
  auto payload = payload_as<T>(m);
  if (!payload) return unexpected(std::move(payload).error());
  auto index = queue_index(payload->index, m.header.request);
  if (!index) return unexpected(std::move(index).error());
  return VringMessage<T>{*payload, *index};
}

Result<std::uint32_t, std::string> BlkBackend::queue_index(std::uint64_t index, std::uint32_t request) const {
  if (index >= vrings_.size()) {
    return unexpected(fmt::format("{} names queue {}; this device has {} (--queues)", request_name(request), index, vrings_.size()));
  }
  return static_cast<std::uint32_t>(index);
}

Result<Reply, std::string> BlkBackend::handle(Message& message) {
  auto reply = dispatch(message);
  if (!reply) return reply;
  // REPLY_ACK: a request with no reply of its own answers 0 (success) when asked to.
  const bool acks = (acked_protocol_features_ & feature_bit(kProtocolReplyAck)) != 0;
  if (!reply->has_value() && acks && message.needs_reply()) return Reply{bytes_of(std::uint64_t{0})};
  return reply;
}

// GUEST-CONTROLLED (front-end): every message; each case checks its payload and fds first.
Result<Reply, std::string> BlkBackend::dispatch(Message& m) {
  const std::uint32_t request = m.header.request;
  switch (request) {
    case kGetFeatures:
      RF_TRY_VOID(expect_empty(m));
      return Reply{bytes_of(offered_features_)};
    case kSetFeatures: {
      RF_TRY_VOID(expect_fds(m, 0));
      auto features = payload_as<std::uint64_t>(m);
      if (!features) return unexpected(std::move(features).error());
      if ((*features & ~offered_features_) != 0) {
        return unexpected(fmt::format("SET_FEATURES acks {:#x}, which includes bits never offered ({:#x})", *features,
                                      *features & ~offered_features_));
      }
      // While queues run only LOG_ALL may change: QEMU turns logging on and off around a migration.
      if (running_queues() != 0 && ((*features ^ acked_features_) & ~feature_bit(kFeatureLogAll)) != 0) {
        return unexpected(fmt::format("SET_FEATURES changes {:#x} while a queue is running (only LOG_ALL may change then)",
                                      *features ^ acked_features_));
      }
      acked_features_ = *features;
      apply_logging();
      // Without protocol features a ring is enabled from the start (vhost-user.rst, "Ring states").
      if (!protocol_features_acked()) {
        for (Vring& v : vrings_) v.enabled = true;
      }
      return Reply{};
    }
    case kGetProtocolFeatures:
      RF_TRY_VOID(expect_empty(m));
      return Reply{bytes_of(offered_protocol_features())};
    case kSetProtocolFeatures: {
      RF_TRY_VOID(expect_fds(m, 0));
      auto features = payload_as<std::uint64_t>(m);
      if (!features) return unexpected(std::move(features).error());
      if ((*features & ~offered_protocol_features()) != 0) {
        return unexpected(fmt::format("SET_PROTOCOL_FEATURES acks {:#x}, which includes bits never offered ({:#x})", *features,
                                      *features & ~offered_protocol_features()));
      }
      acked_protocol_features_ = *features;
      return Reply{};
    }
    case kGetQueueNum:
      RF_TRY_VOID(expect_empty(m));
      return Reply{bytes_of(std::uint64_t{config_.queues})};
    case kSetOwner:
      RF_TRY_VOID(expect_empty(m));
      return Reply{};
    case kResetOwner:
    case kResetDevice:
      RF_TRY_VOID(expect_empty(m));
      reset();
      return Reply{};
    case kSetMemTable:
      RF_TRY_VOID(set_mem_table(m));
      return Reply{};
    case kSetVringNum: {
      auto state = vring_message<VringState>(m);
      if (!state) return unexpected(std::move(state).error());
      Vring& v = vrings_[state->index];
      if (v.queue) return unexpected(while_running(request, state->index));
      if (!is_power_of_two(state->payload.num) || state->payload.num > virtio::kMaxQueueSize) {
        return unexpected(fmt::format("SET_VRING_NUM gives queue {} size {}; a split queue's size is a power of two up to {}",
                                      state->index, state->payload.num, virtio::kMaxQueueSize));
      }
      v.size = state->payload.num;
      return Reply{};
    }
    case kSetVringBase: {
      auto state = vring_message<VringState>(m);
      if (!state) return unexpected(std::move(state).error());
      Vring& v = vrings_[state->index];
      if (v.queue) return unexpected(while_running(request, state->index));
      if (state->payload.num > 0xffff) {
        return unexpected(fmt::format("SET_VRING_BASE gives queue {} base {}, past 16 bits", state->index, state->payload.num));
      }
      v.base = static_cast<std::uint16_t>(state->payload.num);
      return Reply{};
    }
    case kSetVringAddr:
      RF_TRY_VOID(set_vring_addr(m));
      return Reply{};
    case kSetLogBase:
      return set_log_base(m);
    case kSetLogFd:
      // The eventfd through which a back-end may say it wrote the log; QEMU reads the log when it
      // syncs, so it is not needed.
      RF_TRY_VOID(expect_fds(m, 1));
      return Reply{};
    case kGetVringBase:
      return get_vring_base(m);
    case kSetVringKick:
    case kSetVringCall:
    case kSetVringErr:
      RF_TRY_VOID(set_vring_fd(m));
      return Reply{};
    case kSetVringEnable: {
      auto state = vring_message<VringState>(m);
      if (!state) return unexpected(std::move(state).error());
      if (state->payload.num > 1) {
        return unexpected(fmt::format("SET_VRING_ENABLE gives queue {} the value {} (0 or 1)", state->index, state->payload.num));
      }
      Vring& v = vrings_[state->index];
      v.enabled = state->payload.num == 1;
      if (v.queue) v.queue->set_enabled(v.enabled);
      return Reply{};
    }
    case kGetConfig:
      return get_config(m);
    case kGetInflightFd:
      return get_inflight_fd(m);
    case kSetInflightFd:
      RF_TRY_VOID(set_inflight_fd(m));
      return Reply{};
    default:
      return unexpected(fmt::format("{} (request {}) is not supported by this back-end", request_name(request), request));
  }
}

Result<void, std::string> BlkBackend::set_mem_table(Message& m) {
  auto memory = FrontEndMemory::map(m.payload, std::move(m.fds));
  if (!memory) return unexpected(std::move(memory).error());
  // Running queues move to the new map where they were: stopped (drained) first, so that no
  // request straddles the two maps.
  std::vector<unsigned> restart;
  for (unsigned i = 0; i < vrings_.size(); ++i) {
    if (!vrings_[i].queue) continue;
    stop_queue(vrings_[i]);
    restart.push_back(i);
  }
  memory_ = std::move(*memory);
  for (unsigned i : restart) RF_TRY_VOID(start_if_ready(i));
  return {};
}

Result<Reply, std::string> BlkBackend::get_vring_base(const Message& m) {
  auto state = vring_message<VringState>(m);
  if (!state) return unexpected(std::move(state).error());
  Vring& v = vrings_[state->index];
  const std::uint16_t next = stop_queue(v);
  // The ring is stopped until the next SET_VRING_KICK.
  v.kick.reset();
  // QEMU stops every queue at a reset, and at a migration's switch-over, after which the other
  // back-end must be able to open the disk.
  release_disk_if_idle();
  return Reply{bytes_of(VringState{state->index, next})};
}

Result<void, std::string> BlkBackend::set_vring_fd(Message& m) {
  auto word = payload_as<std::uint64_t>(m);
  if (!word) return unexpected(std::move(word).error());
  const std::uint32_t request = m.header.request;
  if ((*word & ~(kVringIndexMask | kVringNoFd)) != 0) {
    return unexpected(fmt::format("{} has unknown bits set in {:#x}", request_name(request), *word));
  }
  auto index = queue_index(*word & kVringIndexMask, request);
  if (!index) return unexpected(std::move(index).error());
  const bool no_fd = (*word & kVringNoFd) != 0;
  RF_TRY_VOID(expect_fds(m, no_fd ? 0 : 1));
  Vring& v = vrings_[*index];
  UniqueFd fd = no_fd ? UniqueFd{} : std::move(m.fds[0]);
  switch (request) {
    case kSetVringKick:
      if (no_fd) return unexpected(fmt::format("SET_VRING_KICK without an fd asks queue {} to poll its ring, which this back-end does not do", *index));
      if (v.queue) return unexpected(while_running(request, *index));
      v.kick = std::move(fd);
      return start_if_ready(*index);
    case kSetVringCall:
      if (v.queue) v.queue->set_call(fd);  // the queue's own number now refers to it too
      v.call = std::move(fd);
      return {};
    default:
      return {};  // SET_VRING_ERR: this back-end reports errors by closing the connection; the fd is dropped
  }
}

Result<Reply, std::string> BlkBackend::get_config(const Message& m) {
  RF_TRY_VOID(expect_fds(m, 0));
  ConfigHeader h{};
  if (m.payload.size() < sizeof h) {
    return unexpected(fmt::format("GET_CONFIG carries {} payload bytes, fewer than its 12-byte header", m.payload.size()));
  }
  std::memcpy(&h, m.payload.data(), sizeof h);
  const auto end = checked_add(h.offset, h.size);
  if (!end || *end > kMaxConfigBytes || m.payload.size() != sizeof h + h.size) {
    return unexpected(fmt::format("GET_CONFIG asks for {} bytes at offset {} in a {}-byte message (the space is {} bytes, "
                                  "and the message must be the header plus them)", h.size, h.offset, m.payload.size(),
                                  kMaxConfigBytes));
  }
  std::vector<std::byte> out(sizeof h + h.size);
  std::memcpy(out.data(), &h, sizeof h);
  std::array<std::byte, kMaxConfigBytes> space{};
  std::memcpy(space.data(), &config_space_, sizeof config_space_);
  std::memcpy(out.data() + sizeof h, space.data() + h.offset, h.size);
  return Reply{std::move(out)};
}

Result<void, std::string> BlkBackend::set_vring_addr(const Message& m) {
  auto addr = vring_message<VringAddr>(m);
  if (!addr) return unexpected(std::move(addr).error());
  Vring& v = vrings_[addr->index];
  const VringAddr& a = addr->payload;
  if ((a.flags & ~kVringFlagLog) != 0) {
    return unexpected(fmt::format("SET_VRING_ADDR gives queue {} unknown flags {:#x}", addr->index, a.flags));
  }
  if (v.queue) {
    // While the queue runs only the used ring's logging may change (QEMU, around a migration).
    if (a.desc_user_addr != v.addr->desc_user_addr || a.avail_user_addr != v.addr->avail_user_addr ||
        a.used_user_addr != v.addr->used_user_addr) {
      return unexpected(fmt::format("SET_VRING_ADDR moves queue {} while it runs", addr->index));
    }
    v.addr = a;
    v.queue->set_dirty_log(logging() ? log_ : nullptr, used_log(v));
    return {};
  }
  v.addr = a;
  return {};
}

std::optional<GuestAddress> BlkBackend::used_log(const Vring& v) const {
  // GUEST-CONTROLLED (front-end): log_guest_addr; marks past the log's end are only counted.
  if (!v.addr || (v.addr->flags & kVringFlagLog) == 0) return std::nullopt;
  return GuestAddress{v.addr->log_guest_addr};
}

bool BlkBackend::logging() const { return (acked_features_ & feature_bit(kFeatureLogAll)) != 0 && log_ != nullptr; }

void BlkBackend::apply_logging() {
  for (Vring& v : vrings_) {
    if (v.queue) v.queue->set_dirty_log(logging() ? log_ : nullptr, used_log(v));
  }
}

// GUEST-CONTROLLED (front-end): the log's size, offset and fd, checked by map_sealed_file.
Result<Reply, std::string> BlkBackend::set_log_base(Message& m) {
  RF_TRY_VOID(expect_fds(m, 1));
  auto base = payload_as<LogBase>(m);
  if (!base) return unexpected(std::move(base).error());
  if (base->mmap_size > kMaxLogBytes) {
    return unexpected(fmt::format("SET_LOG_BASE gives a {}-byte log; at most {} (32 TiB of guest RAM) is accepted",
                                  base->mmap_size, kMaxLogBytes));
  }
  auto map = map_sealed_file(m.fds[0], base->mmap_offset, base->mmap_size, "SET_LOG_BASE");
  if (!map) return unexpected(std::move(map).error());
  log_ = std::make_shared<DirtyLog>(std::move(*map));
  // Every queue marks only the new log before the reply: QEMU frees the old one once it has it.
  apply_logging();
  return Reply{bytes_of(std::uint64_t{0})};
}

Result<Reply, std::string> BlkBackend::get_inflight_fd(const Message& m) {
  RF_TRY_VOID(expect_fds(m, 0));
  auto asked = payload_as<InflightMessage>(m);
  if (!asked) return unexpected(std::move(asked).error());
  if (running_queues() != 0) return unexpected("GET_INFLIGHT_FD while queues are running");
  auto region = InflightRegion::create(*asked, config_.queues);
  if (!region) return unexpected(std::move(region).error());
  inflight_ = std::move(*region);
  return Reply{ReplyPayload{bytes_of(inflight_->message()), inflight_->fd()}};
}

// GUEST-CONTROLLED (front-end): the region handed back, checked by InflightRegion::adopt.
Result<void, std::string> BlkBackend::set_inflight_fd(Message& m) {
  RF_TRY_VOID(expect_fds(m, 1));
  auto given = payload_as<InflightMessage>(m);
  if (!given) return unexpected(std::move(given).error());
  if (running_queues() != 0) return unexpected("SET_INFLIGHT_FD while queues are running");
  auto region = InflightRegion::adopt(*given, std::move(m.fds[0]), config_.queues);
  if (!region) return unexpected(std::move(region).error());
  inflight_ = std::move(*region);
  return {};
}

Result<void, std::string> BlkBackend::start_if_ready(unsigned index) {
  Vring& v = vrings_[index];
  if (!memory_ || !v.size || !v.addr || !v.kick) {
    return unexpected(fmt::format("queue {} got its kick fd before {}", index,
                                  !memory_ ? "the memory table" : !v.size ? "its size (SET_VRING_NUM)" : "its addresses (SET_VRING_ADDR)"));
  }
  virtio::SplitQueueAddresses addresses;
  addresses.size = *v.size;
  struct Part {
    const char* name;
    std::uint64_t user_addr;
    std::uint64_t bytes;
    GuestAddress* out;
  } parts[3] = {{"descriptor table", v.addr->desc_user_addr, virtio::descriptor_table_bytes(*v.size), &addresses.desc},
                {"avail ring", v.addr->avail_user_addr, virtio::avail_ring_bytes(*v.size), &addresses.avail},
                {"used ring", v.addr->used_user_addr, virtio::used_ring_bytes(*v.size), &addresses.used}};
  for (const Part& p : parts) {
    auto gpa = memory_->to_guest(p.user_addr, p.bytes);
    if (!gpa) {
      return unexpected(fmt::format("queue {}'s {} ({:#x} bytes at front-end address {:#x}) is not inside one region of the "
                                    "memory table", index, p.name, p.bytes, p.user_addr));
    }
    *p.out = *gpa;
  }
  virtio::BlkQueueConfig qc;
  qc.index = index;
  qc.addresses = addresses;
  qc.base = v.base;
  qc.event_idx = (acked_features_ & feature_bit(virtio::kFeatureEventIdx)) != 0;
  qc.indirect = (acked_features_ & feature_bit(virtio::kFeatureIndirectDesc)) != 0;
  qc.restrictions = config_.restrictions;
  qc.serial = config_.serial;
  qc.zeroing.discard = (acked_features_ & feature_bit(virtio::kBlkFeatureDiscard)) != 0;
  qc.zeroing.write_zeroes = (acked_features_ & feature_bit(virtio::kBlkFeatureWriteZeroes)) != 0;
  qc.zeroing.may_unmap = zeroing_.may_unmap;
  qc.attach = config_.attach_mode.has_value();
  qc.dirty_log = logging() ? log_ : nullptr;
  qc.used_log = used_log(v);
  if (inflight_) {
    auto part = inflight_->part(index, *v.size);
    if (!part) return unexpected(std::move(part).error());
    qc.inflight = std::move(*part);
  }
  auto kick = UniqueFd(::fcntl(v.kick.get(), F_DUPFD_CLOEXEC, 0));
  UniqueFd call = v.call ? UniqueFd(::fcntl(v.call.get(), F_DUPFD_CLOEXEC, 0)) : UniqueFd{};
  if (!kick || (v.call && !call)) return unexpected(fmt::format("duplicating queue {}'s eventfds: {}", index, std::strerror(errno)));
  auto active = disk_.acquire();
  if (!active) return unexpected(fmt::format("starting queue {}: {}", index, active.error()));
  auto handle = (*active)->duplicate();
  if (!handle) return unexpected(fmt::format("queue {}: {}", index, handle.error().message));
  auto queue = virtio::BlkQueue::create(memory_->memory(), std::move(*handle), std::move(kick), std::move(call), std::move(qc));
  if (!queue) return unexpected(fmt::format("starting queue {}: {}", index, queue.error().message));
  const virtio::InflightRecovery& r = (*queue)->recovery();
  if (!r.resubmit.empty() || r.batch_cleared != 0 || r.ignored != 0 || r.unreadable) {
    recovery_notes_.push_back(fmt::format("queue {}: the inflight region {}: {} requests to resubmit, {} found answered, {} "
                                          "entries naming no descriptor ignored; continuing at avail {}, used {}",
                                          index, r.unreadable ? "was unreadable (another version or size) and was reset" : "records a previous back-end's work",
                                          r.resubmit.size(), r.batch_cleared, r.ignored, r.next_avail, r.used_idx));
  }
  (*queue)->set_enabled(v.enabled);
  auto started = (*queue)->start();
  if (!started) return unexpected(fmt::format("starting queue {}: {}", index, started.error().message));
  v.queue = std::move(*queue);
  return {};
}

}  // namespace rf::vhost_user
