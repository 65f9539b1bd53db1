#include "passthrough/passthrough_device.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <thread>

#include <fmt/format.h>

#include "ring/ring_options.h"

namespace rf {

std::string_view passthrough_submitter_name(PassthroughSubmitter submitter) {
  switch (submitter) {
    case PassthroughSubmitter::DeviceThread: return "device thread (bounded)";
    case PassthroughSubmitter::KernelSqpoll: return "kernel SQPOLL thread (unbounded, watchdog)";
  }
  return "unknown";
}

RingOptions PassthroughDevice::ring_options(const PassthroughConfig& config) {
  RingOptions options;
  options.sq_entries = config.queue_depth;
  // No SQ index array: the kernel then drops no SQE and keeps no count in guest RAM that anyone
  // could mistake for evidence (the guest writes sq_dropped as it likes).
  options.no_sqarray = true;
  if (config.submitter == PassthroughSubmitter::KernelSqpoll) {
    options.sqpoll = SqPollOptions{config.cpu, config.sqpoll_idle};
    // A pinned SQPOLL thread keeps its io-wq workers beside it (not beside the guest's polling
    // vCPU); a ring that joins another's thread leaves that thread's workers as they are.
    options.sqpoll->workers_on_sqpoll_cpu = config.cpu.has_value() && config.share_sqpoll_with == nullptr;
  } else {
    // Every SQE the device thread asks the kernel to take is taken, failing ones included.
    options.submit_all = true;
  }
  return options;
}

Result<std::uint64_t, DeviceError> PassthroughDevice::window_bytes(const GuestMemory& memory, std::size_t disk_count,
                                                                   const PassthroughConfig& config) {
  RF_TRY_VOID(check_device_config(disk_count, config.queue_depth, config.cpu));
  auto windows = count_buffer_windows(memory);
  if (!windows) return unexpected(std::move(windows).error());
  auto layout = ring_memory_layout(ring_options(config));
  if (!layout) return unexpected(ring_error(layout.error()));
  return descriptor_window_bytes(disk_count, *windows) + layout->rings_bytes + layout->sqes_bytes;
}

Result<std::unique_ptr<PassthroughDevice>, DeviceError> PassthroughDevice::create(GuestMemoryMap memory,
                                                                                  std::vector<Disk> disks,
                                                                                  const PassthroughConfig& config) {
  const auto start = std::chrono::steady_clock::now();
  DeviceSetupTimes times;
  RF_TRY_VOID(check_device_basics(disks, config.device_window, config.queue_depth, config.cpu));
  if (config.share_sqpoll_with != nullptr &&
      (config.submitter != PassthroughSubmitter::KernelSqpoll ||
       config.share_sqpoll_with->submitter_ != PassthroughSubmitter::KernelSqpoll)) {
    return unexpected(config_error("share_sqpoll_with needs both devices to use the kernel's SQPOLL thread (KernelSqpoll)"));
  }
  const bool all_read_only = std::all_of(disks.begin(), disks.end(), [](const Disk& d) { return d.read_only(); });
  auto restrictions = device_restrictions(config.restrictions, all_read_only ? "blk-passthrough-ro" : "blk-passthrough");
  if (!restrictions) return unexpected(std::move(restrictions).error());
  if (!memory) return unexpected(config_error("no guest memory"));
  auto windows = count_buffer_windows(*memory);
  if (!windows) return unexpected(std::move(windows).error());

  // The window: the descriptor (one window per fixed-buffer piece), then the rings and the SQE
  // array in the sizes this kernel wants.
  RingOptions options = ring_options(config);
  auto layout = ring_memory_layout(options);
  if (!layout) return unexpected(ring_error(layout.error()));
  const std::uint64_t descriptor_bytes = descriptor_window_bytes(disks.size(), *windows);
  const std::uint64_t window_bytes = descriptor_bytes + layout->rings_bytes + layout->sqes_bytes;
  auto window = claim_device_window(*memory, config.device_window, window_bytes);
  if (!window) return unexpected(std::move(window).error());
  std::byte* const base = window->host;
  std::byte* rings = base + descriptor_bytes;
  options.caller_memory = CallerRingMemory{{rings, layout->rings_bytes}, {rings + layout->rings_bytes, layout->sqes_bytes}};

  auto kick = make_eventfd("the doorbell");
  if (!kick) return unexpected(std::move(kick).error());
  auto notify = make_eventfd("completion notifications");
  if (!notify) return unexpected(std::move(notify).error());
  auto release = ReleaseProbe::create();
  if (!release) return unexpected(std::move(release).error());
  std::optional<Result<Ring, DeviceError>> built;
  const auto build = [&] {
    built = build_device_ring(options, disks, *memory, notify->get(), *restrictions, times, release->registered_fd());
  };
  if (config.share_sqpoll_with != nullptr) {
    // Attach to the other ring's SQPOLL thread while that ring is kept open (its watchdog may
    // close it from its own thread).
    const bool attached = config.share_sqpoll_with->ledger_->with_open_fd([&](int fd) {
      options.attach_wq_fd = fd;
      build();
    });
    if (!attached) return unexpected(config_error("share_sqpoll_with names a device whose ring is closed (stopped, or broken)"));
  } else {
    build();
  }
  if (!*built) return unexpected(std::move(*built).error());
  Result<Ring, DeviceError>& ring = *built;
  release->forget_registered();  // the ring holds it now

  std::unique_ptr<PassthroughDevice> device(new PassthroughDevice(std::move(memory), std::move(*ring), std::move(disks)));
  PassthroughDevice& d = *device;
  d.window_claim_ = std::move(window->claim);
  d.kick_ = std::move(*kick);
  d.notify_ = std::move(*notify);
  d.release_ = std::move(*release);
  d.submitter_ = config.submitter;
  d.watchdog_interval_ = config.watchdog.interval;

  // The descriptor, in guest-physical terms: the kernel's ring fields inside the window.
  // Every offset lies inside the device window, which claim_device_window found inside one
  // region, so these moves cannot pass 2^64.
  const RingInfo& info = d.ring_.info();
  d.bound_ = info.cq_entries;
  const auto ring_gpa = [&](std::uint64_t offset) { return config.device_window.unchecked_add(descriptor_bytes + offset).value(); };
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
  d.windows_ = buffer_windows(*d.memory_, abi::Mode::Passthrough);
  h.disk_count = static_cast<std::uint32_t>(d.disks_.size());
  h.window_count = static_cast<std::uint32_t>(d.windows_.size());
  RF_TRY_VOID(write_descriptor(base, descriptor_bytes, h, d.disks_, d.windows_));
  // SAFETY: both words lie in the device window, which claim_device_window found inside one
  // region of the map the device keeps alive; the kernel's offsets keep them 4-aligned.
  d.sq_tail_word_ = reinterpret_cast<std::uint32_t*>(rings + info.sq_offsets.tail);
  // SAFETY: as above.
  auto* sq_flags_word = reinterpret_cast<std::uint32_t*>(rings + info.sq_offsets.flags);

  // The kernel's counters now that the self-check is done: everything counts from here. Each
  // reading is bounded by what this ring can print when nothing in it is unbounded (its CQ, its
  // files and buffers, and the bound's worth of pending requests and overflowed CQEs).
  const std::size_t fdinfo_bytes =
      ring_fdinfo_bytes(info.sq_entries, info.cq_entries, d.disks_.size() + 1, d.windows_.size(), 2 * d.bound_);
  auto ledger = RingLedger::create(d.ring_, fdinfo_bytes);
  if (!ledger) return unexpected(DeviceError{DeviceErrc::Ring, 0, ledger.error()});
  d.ledger_.emplace(std::move(*ledger));
  if (config.submitter == PassthroughSubmitter::DeviceThread) {
    SqSubmitterConfig submit;
    submit.sq_entries = info.sq_entries;
    submit.bound = d.bound_;
    submit.poll_idle = config.poll_idle;
    submit.cpu = config.cpu;
    d.submitter_thread_ = std::make_unique<SqSubmitter>(*d.ledger_, GuestSqWords{d.sq_tail_word_, sq_flags_word},
                                                        d.ledger_->last().sq_head, d.kick_.get(), submit);
  } else {
    d.watchdog_ = std::make_unique<SqpollWatchdog>(*d.ledger_, d.bound_, d.kick_.get(), config.watchdog);
  }
  d.setup_times_ = times;
  d.setup_times_.total = std::chrono::steady_clock::now() - start;
  return device;
}

PassthroughDevice::~PassthroughDevice() { stop(std::chrono::milliseconds(0)); }

Result<void, DeviceError> PassthroughDevice::start_io() {
  auto started = submitter_thread_ ? submitter_thread_->start() : watchdog_->start();
  if (!started) return unexpected(std::move(started).error());
  return {};
}

void PassthroughDevice::pause_intake() {
  if (submitter_thread_) {
    submitter_thread_->pause();
  } else {
    // The kernel's SQ thread reads the guest's SQ by itself; what the VMM controls is waking it.
    // Doorbells stay counted in the kick eventfd until resume_intake().
    watchdog_->hold_doorbells(true);
  }
}

void PassthroughDevice::resume_intake() {
  if (submitter_thread_) {
    submitter_thread_->resume();
  } else {
    watchdog_->hold_doorbells(false);
  }
}

std::uint64_t PassthroughDevice::doorbells() const {
  return submitter_thread_ ? submitter_thread_->doorbells() : watchdog_->doorbells();
}

BrokenState PassthroughDevice::broken() const {
  if (submitter_thread_) return {submitter_thread_->broken(), submitter_thread_->broken_detail()};
  return {watchdog_->broken(), watchdog_->broken_detail()};
}

std::optional<RingSnapshot> PassthroughDevice::observe() const {
  if (!ledger_) return std::nullopt;
  if (watchdog_) {
    // What the watchdog read last, if it is recent: an observer must not make the kernel print
    // a flood's overflow list, or hold the lock a shared SQPOLL thread waits for.
    if (std::chrono::steady_clock::now() - ledger_->last_at() > 4 * watchdog_interval_ + std::chrono::milliseconds(5)) {
      return std::nullopt;
    }
    return ledger_->last();
  }
  auto snapshot = ledger_->read_within(std::chrono::milliseconds(2));
  if (!snapshot) return std::nullopt;
  return *snapshot;
}

std::optional<std::uint64_t> PassthroughDevice::in_flight() const {
  if (!ledger_) return std::nullopt;
  // Closed (stopped, or by the watchdog): the kernel cancels what it held; none is left once it
  // has freed the ring.
  if (!ledger_->is_open()) return release_ && release_->wait_released(std::chrono::milliseconds(0)) ? std::optional<std::uint64_t>(0) : std::nullopt;
  const auto snapshot = observe();
  if (!snapshot) return std::nullopt;
  return snapshot->in_flight();
}

std::optional<std::uint64_t> PassthroughDevice::completions_posted() const {
  const auto snapshot = observe();
  if (!snapshot) return std::nullopt;
  return snapshot->posted + snapshot->overflow;
}

std::optional<std::uint64_t> PassthroughDevice::taken() const {
  const auto snapshot = observe();
  if (!snapshot) return std::nullopt;
  return snapshot->taken;
}

Result<void, DeviceError> PassthroughDevice::wait_drained(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  const auto broken_error = [this] {
    const BrokenState b = broken();
    return DeviceError{DeviceErrc::Broken, 0, fmt::format("the device is broken ({}: {}); stop it", broken_reason_name(b.reason), b.detail)};
  };
  if (broken().reason != BrokenReason::None) return unexpected(broken_error());
  if (submitter_thread_) {
    // The device thread takes nothing more once it has acknowledged the pause: from then on the
    // kernel's count of SQEs taken is final and only completions move.
    if (!submitter_thread_->wait_paused(timeout)) {
      return unexpected(DeviceError{DeviceErrc::Timeout, 0, fmt::format("the device thread did not pause within {} ms", timeout.count())});
    }
  } else {
    // A guest that published SQEs and rang while the SQ thread slept is waiting on a held
    // doorbell: wake the thread once so that it takes them.
    (void)ledger_->enter_if_open(EnterFlags::SqWakeup);
  }
  std::optional<RingSnapshot> last;
  bool sq_empty = true;
  for (int settled = 0;;) {
    if (broken().reason != BrokenReason::None) return unexpected(broken_error());
    auto snapshot = ledger_->read_within(std::chrono::milliseconds(1));
    if (snapshot) last = *snapshot;
    if (watchdog_ && snapshot) {
      // GUEST-CONTROLLED: the tail, only to tell whether the SQ thread has more to take; a lying
      // guest can only make its own quiesce time out or end early.
      sq_empty = snapshot->sq_head == std::atomic_ref(*sq_tail_word_).load(std::memory_order_acquire);
    }
    if (snapshot && snapshot->in_flight() == 0 && snapshot->overflow_exact && (submitter_thread_ || sq_empty)) {
      // Paused device thread: final at once. SQPOLL: twice, 1 ms apart (not mid-batch).
      if (submitter_thread_ || ++settled == 2) return {};
    } else {
      settled = 0;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      return unexpected(DeviceError{
          DeviceErrc::Timeout, 0,
          fmt::format("{} requests were still in flight after {} ms{}", last ? std::to_string(last->in_flight()) : "an unknown number of",
                      timeout.count(),
                      sq_empty ? "" : " and the guest's SQ was not empty (pause its vCPUs before quiescing an SQPOLL passthrough device)")});
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

DeviceStopReport PassthroughDevice::stop_io() {
  if (submitter_thread_) submitter_thread_->stop();
  if (watchdog_) watchdog_->stop();
  DeviceStopReport report;
  if (!ledger_) return report;
  // What the kernel still holds when the ring closes. Nobody submits any more (the SQPOLL thread
  // may, until the ring is closed: then this is a lower bound).
  const auto now = ledger_->is_open() ? ledger_->read_within(std::chrono::milliseconds(200))
                                      : Result<RingSnapshot, std::string>(ledger_->last());
  report.counted = now.has_value();
  if (now) report.cancelled = now->in_flight();
  // The kernel cancels what is left (posting into the CQ in guest RAM), waits for requests it
  // cannot cancel, and then frees the ring: unregisters guest RAM, then the fixed files. Until
  // then it may still write the rings and buffers in guest RAM: wait for the probe.
  ledger_->close();
  report.released = release_ && release_->wait_released(kReleaseTimeout);
  return report;
}

}  // namespace rf
