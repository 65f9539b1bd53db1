#include "mediated/mediated_device.h"

#include <fmt/format.h>


namespace rf {

Result<std::uint64_t, DeviceError> MediatedDevice::window_bytes(const GuestMemory& memory, std::size_t disk_count,
                                                                const MediatedConfig& config) {
  RF_TRY_VOID(check_device_config(disk_count, config.queue_depth, config.mediator.cpu));
  auto windows = count_buffer_windows(memory);
  if (!windows) return unexpected(std::move(windows).error());
  return descriptor_window_bytes(disk_count, *windows) +
         guest_ring_layout(config.queue_depth, config.queue_depth * 2).bytes;
}

Result<std::unique_ptr<MediatedDevice>, DeviceError> MediatedDevice::create(GuestMemoryMap memory, std::vector<Disk> disks,
                                                                            const MediatedConfig& config) {
  const auto start = std::chrono::steady_clock::now();
  DeviceSetupTimes times;
  RF_TRY_VOID(check_device_basics(disks, config.device_window, config.queue_depth, config.mediator.cpu));
  auto restrictions = device_restrictions(config.restrictions, "blk-mediated");
  if (!restrictions) return unexpected(std::move(restrictions).error());
  if (!memory) return unexpected(config_error("no guest memory"));
  auto windows = count_buffer_windows(*memory);
  if (!windows) return unexpected(std::move(windows).error());
  const GuestRingLayout layout = guest_ring_layout(config.queue_depth, config.queue_depth * 2);
  const std::uint64_t descriptor_bytes = descriptor_window_bytes(disks.size(), *windows);
  const std::uint64_t window_bytes = descriptor_bytes + layout.bytes;
  auto window = claim_device_window(*memory, config.device_window, window_bytes);
  if (!window) return unexpected(std::move(window).error());
  std::byte* const base = window->host;

  // The private ring: one SQ slot per guest CQ entry, since that bounds what is in flight.
  RingOptions options;
  options.sq_entries = layout.cq_entries;
  auto ring_eventfd = make_eventfd("the private ring's completions");
  if (!ring_eventfd) return unexpected(std::move(ring_eventfd).error());
  auto release = ReleaseProbe::create();
  if (!release) return unexpected(std::move(release).error());
  auto ring = build_device_ring(options, disks, *memory, ring_eventfd->get(), *restrictions, times, release->registered_fd());
  if (!ring) return unexpected(std::move(ring).error());
  release->forget_registered();  // the ring holds it now
  auto kick = make_eventfd("the doorbell");
  if (!kick) return unexpected(std::move(kick).error());
  auto notify = make_eventfd("completion notifications");
  if (!notify) return unexpected(std::move(notify).error());

  std::unique_ptr<MediatedDevice> device(new MediatedDevice(std::move(memory), std::move(*ring), std::move(disks)));
  MediatedDevice& d = *device;
  d.window_claim_ = std::move(window->claim);
  d.kick_ = std::move(*kick);
  d.notify_ = std::move(*notify);
  d.ring_eventfd_ = std::move(*ring_eventfd);
  d.release_ = std::move(*release);

  // The descriptor: ring fields inside the window (claimed inside one region, so these moves
  // cannot pass 2^64), no SQ index array, no bias.
  const auto ring_gpa = [&](std::uint64_t offset) { return config.device_window.unchecked_add(descriptor_bytes + offset).value(); };
  abi::DescriptorHeader& h = d.header_;
  h.mode = abi::Mode::Mediated;
  h.device_window_gpa = config.device_window.value();
  h.device_window_bytes = window_bytes;
  h.ring.sq_head = ring_gpa(GuestRingLayout::kSqHead);
  h.ring.sq_tail = ring_gpa(GuestRingLayout::kSqTail);
  h.ring.sq_flags = ring_gpa(GuestRingLayout::kSqFlags);
  h.ring.sq_dropped = ring_gpa(GuestRingLayout::kSqDropped);
  h.ring.sq_array = 0;
  h.ring.sqes = ring_gpa(layout.sqes);
  h.ring.sq_entries = layout.sq_entries;
  h.ring.cq_head = ring_gpa(GuestRingLayout::kCqHead);
  h.ring.cq_tail = ring_gpa(GuestRingLayout::kCqTail);
  h.ring.cq_flags = ring_gpa(GuestRingLayout::kCqFlags);
  h.ring.cq_overflow = ring_gpa(GuestRingLayout::kCqOverflow);
  h.ring.cqes = ring_gpa(layout.cqes);
  h.ring.cq_entries = layout.cq_entries;
  d.windows_ = buffer_windows(*d.memory_, abi::Mode::Mediated);
  h.disk_count = static_cast<std::uint32_t>(d.disks_.size());
  h.window_count = static_cast<std::uint32_t>(d.windows_.size());
  RF_TRY_VOID(write_descriptor(base, descriptor_bytes, h, d.disks_, d.windows_));

  for (const Disk& disk : d.disks_) d.limits_.push_back(DiskLimits{disk.size_bytes(), disk.logical_block_size(), disk.read_only()});
  ValidationContext context{&d.ring_.restrictions(), d.limits_, d.memory_.get(), kDeviceMaxTransfer};
  d.mediator_ = std::make_unique<Mediator>(GuestRing(base + descriptor_bytes, layout), context, d.ring_,
                                           d.ring_eventfd_.get(), d.kick_.get(), d.notify_.get(), config.mediator);
  d.setup_times_ = times;
  d.setup_times_.total = std::chrono::steady_clock::now() - start;
  return device;
}

MediatedDevice::~MediatedDevice() { stop(std::chrono::milliseconds(0)); }

BrokenState MediatedDevice::broken() const {
  MediatorCounters c = mediator_->counters();
  return {c.broken, std::move(c.broken_detail)};
}

Result<void, DeviceError> MediatedDevice::start_io() {
  return mediator_->start();
}

Result<void, DeviceError> MediatedDevice::wait_drained(std::chrono::milliseconds timeout) {
  if (mediator_->wait_drained(timeout)) return {};
  const MediatorCounters c = mediator_->counters();
  if (c.broken != BrokenReason::None) {
    return unexpected(DeviceError{DeviceErrc::Broken, 0,
                                  fmt::format("the device is broken ({}: {}); stop it", broken_reason_name(c.broken), c.broken_detail)});
  }
  return unexpected(DeviceError{DeviceErrc::Timeout, 0,
                                fmt::format("{} requests were still in flight after {} ms", c.in_flight, timeout.count())});
}

DeviceStopReport MediatedDevice::stop_io() {
  mediator_->stop();
  // Closing the private ring makes the kernel cancel what is left; after it no completion can
  // reach the mediator's tables, so the guest can be told.
  ring_.close();
  DeviceStopReport report;
  report.cancelled = mediator_->cancel_outstanding();
  // The kernel frees the ring only after every request it held has ended: until then a
  // cancelled read may still land in guest RAM, and guest RAM stays pinned.
  report.released = release_ && release_->wait_released(kReleaseTimeout);
  return report;
}

}  // namespace rf
