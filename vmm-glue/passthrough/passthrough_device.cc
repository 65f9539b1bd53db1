#include "passthrough/passthrough_device.h"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <thread>

#include <fmt/format.h>

#include "ring/ring_options.h"
#include "sys/syscalls.h"

namespace rf {

RingOptions PassthroughDevice::ring_options(const PassthroughConfig& config) {
  RingOptions options;
  options.sq_entries = config.queue_depth;
  options.sqpoll = SqPollOptions{config.sqpoll_cpu, config.sqpoll_idle};
  if (config.share_sqpoll_with != nullptr) options.attach_wq_fd = config.share_sqpoll_with->ring_.fd();
  return options;
}

Result<std::uint64_t, DeviceError> PassthroughDevice::window_bytes(const GuestMemory& memory, std::size_t disk_count,
                                                                   const PassthroughConfig& config) {
  auto buffers = plan_guest_buffers(memory);
  if (!buffers) return unexpected(std::move(buffers).error());
  auto layout = ring_memory_layout(ring_options(config));
  if (!layout) return unexpected(ring_error(layout.error()));
  return descriptor_window_bytes(disk_count, buffers->windows) + layout->rings_bytes + layout->sqes_bytes;
}

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
  RingOptions options = ring_options(config);
  auto layout = ring_memory_layout(options);
  if (!layout) return unexpected(ring_error(layout.error()));
  const std::uint64_t descriptor_bytes = descriptor_window_bytes(disks.size(), buffers->windows);
  const std::uint64_t window_bytes = descriptor_bytes + layout->rings_bytes + layout->sqes_bytes;
  if (config.share_sqpoll_with != nullptr) {
    config.share_sqpoll_with->sqpoll_shared_.store(true, std::memory_order_relaxed);
  }
  auto base = claim_device_window(memory, config.device_window, window_bytes);
  if (!base) return unexpected(std::move(base).error());
  std::byte* rings = *base + descriptor_bytes;
  options.caller_memory = CallerRingMemory{{rings, layout->rings_bytes}, {rings + layout->rings_bytes, layout->sqes_bytes}};

  auto kick = make_eventfd("the doorbell");
  if (!kick) return unexpected(std::move(kick).error());
  auto notify = make_eventfd("completion notifications");
  if (!notify) return unexpected(std::move(notify).error());
  auto control = make_eventfd("the doorbell thread's control");
  if (!control) return unexpected(std::move(control).error());
  auto ring = build_device_ring(options, disks, memory, *buffers, notify->get(), *restrictions, times);
  if (!ring) return unexpected(std::move(ring).error());

  std::unique_ptr<PassthroughDevice> device(new PassthroughDevice(std::move(*ring), std::move(disks)));
  PassthroughDevice& d = *device;
  d.kick_ = std::move(*kick);
  d.notify_ = std::move(*notify);
  d.control_ = std::move(*control);
  d.sqpoll_shared_.store(config.share_sqpoll_with != nullptr, std::memory_order_relaxed);

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
  // SAFETY: both words lie in the device window, which claim_device_window found inside one
  // region of `memory` (which outlives the device); the kernel's offsets keep them 4-aligned.
  d.sq_tail_word_ = reinterpret_cast<std::uint32_t*>(rings + info.sq_offsets.tail);
  d.sq_dropped_word_ = reinterpret_cast<std::uint32_t*>(rings + info.sq_offsets.dropped);
  // The kernel's counters now that the self-check is done: quiesce and stop count from here.
  // The SQPOLL thread holds the ring's lock only while it submits, and nothing is queued yet.
  auto baseline = read_ring_fdinfo_within(d.ring_.fd(), std::chrono::seconds(1));
  if (!baseline) return unexpected(DeviceError{DeviceErrc::Ring, 0, "reading the new ring's counters: " + baseline.error()});
  d.baseline_ = *baseline;
  d.setup_times_ = times;
  d.setup_times_.total = std::chrono::steady_clock::now() - start;
  return device;
}

PassthroughDevice::~PassthroughDevice() { stop(std::chrono::milliseconds(0)); }

Result<void, DeviceError> PassthroughDevice::start_io() {
  try {
    doorbell_ = std::thread([this] { doorbell_loop(); });
  } catch (const std::system_error& e) {
    return unexpected(DeviceError{DeviceErrc::Thread, e.code().value(), "starting the doorbell thread failed"});
  }
  return {};
}

void PassthroughDevice::wake_doorbell_thread() {
  const std::uint64_t one = 1;
  (void)!::write(control_.get(), &one, sizeof(one));
}

void PassthroughDevice::pause_intake() {
  // The kernel's SQ thread reads the guest's SQ by itself; what the VMM controls is waking it.
  // Doorbells stay counted in the kick eventfd until resume_intake().
  doorbells_held_.store(true, std::memory_order_release);
  wake_doorbell_thread();
}

void PassthroughDevice::resume_intake() {
  doorbells_held_.store(false, std::memory_order_release);
  wake_doorbell_thread();
}

std::uint32_t PassthroughDevice::guest_sq_tail() const {
  // GUEST-CONTROLLED: the SQ tail. Only compared with the kernel's head to decide whether to
  // wait longer; a lying guest can only make its own quiesce time out or end early.
  return std::atomic_ref(*sq_tail_word_).load(std::memory_order_acquire);
}

std::uint32_t PassthroughDevice::guest_sq_dropped() const {
  // GUEST-CONTROLLED: the kernel counts dropped SQEs in guest RAM; same limits as guest_sq_tail().
  if (!ring_.info().sq_offsets.has_array) return 0;
  return std::atomic_ref(*sq_dropped_word_).load(std::memory_order_relaxed);
}

std::uint64_t PassthroughDevice::posted_at(const KernelRingCounters& now) const {
  return std::uint64_t{static_cast<std::uint32_t>(now.cq_tail - baseline_.cq_tail)} + now.overflow -
         std::min(now.overflow, baseline_.overflow);
}

std::uint64_t PassthroughDevice::in_flight_at(const KernelRingCounters& now) const {
  const std::uint64_t taken = static_cast<std::uint32_t>(now.sq_head - baseline_.sq_head);
  const std::uint64_t settled = posted_at(now) + guest_sq_dropped();
  return taken > settled ? taken - settled : 0;
}

std::optional<std::uint64_t> PassthroughDevice::in_flight() const {
  if (!ring_.is_open()) return 0;
  auto now = read_ring_fdinfo(ring_.fd());
  if (!now) return std::nullopt;  // the SQ thread holds the ring's lock right now
  return in_flight_at(*now);
}

std::optional<std::uint64_t> PassthroughDevice::completions_posted() const {
  if (!ring_.is_open()) return std::nullopt;
  auto now = read_ring_fdinfo(ring_.fd());
  if (!now) return std::nullopt;
  return posted_at(*now);
}

Result<void, DeviceError> PassthroughDevice::wait_drained(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  // A guest that published SQEs and rang while the SQ thread slept is waiting on a held
  // doorbell: wake the thread once so that it takes them.
  sys::io_uring_enter(ring_.fd(), 0, 0, IORING_ENTER_SQ_WAKEUP, nullptr, 0);
  std::uint64_t last = 0;
  for (int settled = 0;;) {
    // Unreadable counters (the SQ thread holds the ring's lock) mean it is busy: look again.
    const auto kernel = read_ring_fdinfo(ring_.fd());
    const bool sq_empty = kernel && kernel->sq_head == guest_sq_tail();
    if (kernel) last = in_flight_at(*kernel);
    if (kernel && last == 0 && sq_empty) {
      if (++settled == 2) return {};  // twice, 1 ms apart: the SQ thread is not mid-batch
    } else {
      settled = 0;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      return unexpected(DeviceError{
          DeviceErrc::Timeout, 0,
          fmt::format("{} requests were still in flight after {} ms{}", last, timeout.count(),
                      sq_empty ? "" : " and the guest's SQ was not empty (pause its vCPUs before quiescing a passthrough device)")});
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

DeviceStopReport PassthroughDevice::stop_io() {
  stopping_.store(true, std::memory_order_release);
  if (doorbell_.joinable()) {
    wake_doorbell_thread();
    doorbell_.join();
  }
  DeviceStopReport report;
  if (!ring_.is_open()) return report;
  // The SQ thread holds the ring's lock while it submits: give it a moment to let go.
  const auto now = read_ring_fdinfo_within(ring_.fd(), std::chrono::milliseconds(200));
  report.counted = now.has_value();
  if (now) report.cancelled = in_flight_at(*now);
  // The kernel cancels what is left (posting into the CQ in guest RAM), waits for requests it
  // cannot cancel, and then frees the ring: stops its SQ thread, unpins guest RAM. Until then it
  // may still write the rings and buffers in guest RAM, so a VMM must not reuse them: wait for
  // the thread, which is the one part of that the kernel lets us observe.
  const int sq_thread = now ? now->sq_thread : -1;
  ring_.close();
  if (sq_thread > 0 && !sqpoll_shared_.load(std::memory_order_relaxed)) {
    const std::string task = fmt::format("/proc/self/task/{}", sq_thread);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (::access(task.c_str(), F_OK) == 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    report.released = ::access(task.c_str(), F_OK) != 0;
  }
  return report;
}

void PassthroughDevice::doorbell_loop() {
  pollfd fds[2] = {{control_.get(), POLLIN, 0}, {kick_.get(), POLLIN, 0}};
  while (!stopping_.load(std::memory_order_acquire)) {
    // Held doorbells are not read: they stay counted in the eventfd for resume_intake().
    const nfds_t watched = doorbells_held_.load(std::memory_order_acquire) ? 1 : 2;
    if (::poll(fds, watched, -1) < 0) {
      if (errno == EINTR || errno == ENOMEM) continue;  // transient: the guest is still waiting
      return;
    }
    if ((fds[0].revents & POLLIN) != 0) {
      std::uint64_t count = 0;
      (void)!::read(control_.get(), &count, sizeof(count));
      continue;  // look at the flags again
    }
    if (watched < 2 || (fds[1].revents & POLLIN) == 0) continue;
    std::uint64_t count = 0;
    if (::read(kick_.get(), &count, sizeof(count)) != static_cast<ssize_t>(sizeof(count))) continue;
    // SQ_WAKEUP on a thread that is already awake is harmless; the guest only kicks when it saw
    // IORING_SQ_NEED_WAKEUP, so spurious kicks cost one system call each.
    sys::io_uring_enter(ring_.fd(), 0, 0, IORING_ENTER_SQ_WAKEUP, nullptr, 0);
    wakeups_.fetch_add(1, std::memory_order_relaxed);
  }
}

}  // namespace rf
