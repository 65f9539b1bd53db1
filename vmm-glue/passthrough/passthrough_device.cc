#include "passthrough/passthrough_device.h"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "ring/ring_options.h"
#include "sys/syscalls.h"

namespace rf {

Result<std::unique_ptr<PassthroughDevice>, DeviceError> PassthroughDevice::create(GuestMemory& memory,
                                                                                  std::vector<Disk> disks,
                                                                                  const PassthroughConfig& config) {
  const auto start = std::chrono::steady_clock::now();
  DeviceSetupTimes times;
  RF_TRY_VOID(check_device_basics(disks, config.device_window));
  const bool all_read_only = std::all_of(disks.begin(), disks.end(), [](const Disk& d) { return d.read_only(); });
  auto restrictions = device_restrictions(config.restrictions, all_read_only ? "blk-passthrough-ro" : "blk-passthrough");
  if (!restrictions) return unexpected(std::move(restrictions).error());
  auto buffers = plan_guest_buffers(memory);
  if (!buffers) return unexpected(std::move(buffers).error());

  // The window: the descriptor (one window per fixed-buffer piece), then the rings and the SQE
  // array in the sizes this kernel wants.
  RingOptions options;
  options.sq_entries = config.queue_depth;
  options.sqpoll = SqPollOptions{config.sqpoll_cpu, config.sqpoll_idle};
  if (config.share_sqpoll_with != nullptr) options.attach_wq_fd = config.share_sqpoll_with->ring_.fd();
  auto layout = ring_memory_layout(options);
  if (!layout) return unexpected(ring_error(layout.error()));
  const std::uint64_t descriptor_bytes = descriptor_window_bytes(disks.size(), buffers->windows);
  const std::uint64_t window_bytes = descriptor_bytes + layout->rings_bytes + layout->sqes_bytes;
  auto base = claim_device_window(memory, config.device_window, window_bytes);
  if (!base) return unexpected(std::move(base).error());
  std::byte* rings = *base + descriptor_bytes;
  options.caller_memory = CallerRingMemory{{rings, layout->rings_bytes}, {rings + layout->rings_bytes, layout->sqes_bytes}};

  auto kick = make_eventfd("the doorbell");
  if (!kick) return unexpected(std::move(kick).error());
  auto notify = make_eventfd("completion notifications");
  if (!notify) return unexpected(std::move(notify).error());
  auto stop = make_eventfd("the doorbell thread's shutdown");
  if (!stop) return unexpected(std::move(stop).error());
  auto ring = build_device_ring(options, disks, memory, *buffers, notify->get(), *restrictions, times);
  if (!ring) return unexpected(std::move(ring).error());

  std::unique_ptr<PassthroughDevice> device(new PassthroughDevice(std::move(*ring), std::move(disks)));
  PassthroughDevice& d = *device;
  d.kick_ = std::move(*kick);
  d.notify_ = std::move(*notify);
  d.stop_ = std::move(*stop);

  // The descriptor, in guest-physical terms: the kernel's ring fields inside the window.
  // Every offset lies inside the device window, which claim_device_window found inside one
  // region, so these moves cannot pass 2^64.
  const RingInfo& info = d.ring_.info();
  const auto ring_gpa = [&](std::uint64_t offset) { return config.device_window.plus(descriptor_bytes + offset)->value(); };
  abi::DescriptorHeader& h = d.header_;
  h.mode = abi::Mode::Passthrough;
  h.device_window_gpa = config.device_window.value();
  h.device_window_bytes = window_bytes;
  h.ring.sq_head = ring_gpa(info.sq_offsets.head);
  h.ring.sq_tail = ring_gpa(info.sq_offsets.tail);
  h.ring.sq_flags = ring_gpa(info.sq_offsets.flags);
  h.ring.sq_dropped = ring_gpa(info.sq_offsets.dropped);
  h.ring.sq_array = info.sq_offsets.has_array ? ring_gpa(info.sq_offsets.array) : 0;
  h.ring.sqes = ring_gpa(layout->rings_bytes);
  h.ring.sq_entries = info.sq_entries;
  h.ring.cq_head = ring_gpa(info.cq_offsets.head);
  h.ring.cq_tail = ring_gpa(info.cq_offsets.tail);
  h.ring.cq_flags = ring_gpa(info.cq_offsets.flags);
  h.ring.cq_overflow = ring_gpa(info.cq_offsets.overflow);
  h.ring.cqes = ring_gpa(info.cq_offsets.cqes);
  h.ring.cq_entries = info.cq_entries;
  d.windows_ = buffer_windows(memory, abi::Mode::Passthrough);
  h.disk_count = static_cast<std::uint32_t>(d.disks_.size());
  h.window_count = static_cast<std::uint32_t>(d.windows_.size());
  RF_TRY_VOID(write_descriptor(*base, descriptor_bytes, h, d.disks_, d.windows_));
  d.setup_times_ = times;
  d.setup_times_.total = std::chrono::steady_clock::now() - start;
  try {
    d.doorbell_ = std::thread([&d] { d.doorbell_loop(); });
  } catch (const std::system_error& e) {
    return unexpected(DeviceError{DeviceErrc::Thread, e.code().value(), "starting the doorbell thread failed"});
  }
  return device;
}
PassthroughDevice::~PassthroughDevice() {
  if (doorbell_.joinable()) {
    const std::uint64_t one = 1;
    (void)!::write(stop_.get(), &one, sizeof(one));
    doorbell_.join();
  }
}

void PassthroughDevice::doorbell_loop() {
  pollfd fds[2] = {{kick_.get(), POLLIN, 0}, {stop_.get(), POLLIN, 0}};
  while (true) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR || errno == ENOMEM) continue;  // transient: the guest is still waiting
      return;
    }
    if ((fds[1].revents & POLLIN) != 0) return;
    if ((fds[0].revents & POLLIN) == 0) continue;
    std::uint64_t count = 0;
    if (::read(kick_.get(), &count, sizeof(count)) != static_cast<ssize_t>(sizeof(count))) continue;
    // SQ_WAKEUP on a thread that is already awake is harmless; the guest only kicks when it saw
    // IORING_SQ_NEED_WAKEUP, so spurious kicks cost one system call each.
    sys::io_uring_enter(ring_.fd(), 0, 0, IORING_ENTER_SQ_WAKEUP, nullptr, 0);
    wakeups_.fetch_add(1, std::memory_order_relaxed);
  }
}

}  // namespace rf
