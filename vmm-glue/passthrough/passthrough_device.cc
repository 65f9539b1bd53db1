#include "passthrough/passthrough_device.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "restrictions/policy_compiler.h"
#include "restrictions/policy_loader.h"
#include "ring/setup.h"
#include "sys/syscalls.h"
#include "util/address.h"

namespace rf {

namespace {

DeviceError config_error(std::string message) { return DeviceError{DeviceErrc::InvalidConfig, 0, std::move(message)}; }

DeviceError ring_error(const RingError& e) { return DeviceError{DeviceErrc::Ring, e.sys_errno, e.message}; }

Result<RestrictionSet, DeviceError> default_restrictions(const std::vector<Disk>& disks) {
  bool all_read_only = true;
  for (const Disk& d : disks) all_read_only = all_read_only && d.read_only();
  const char* name = all_read_only ? "blk-passthrough-ro" : "blk-passthrough";
  auto policy = policy::load_policy(name);
  if (!policy) return unexpected(config_error(fmt::format("the built-in policy {} does not load", name)));
  return policy::compile_policy(*policy);
}

Result<UniqueFd, DeviceError> make_eventfd(const char* what) {
  UniqueFd fd(::eventfd(0, EFD_CLOEXEC));
  if (!fd) {
    const int err = errno;
    return unexpected(DeviceError{DeviceErrc::Eventfd, err, fmt::format("eventfd for {}: {}", what, std::strerror(err))});
  }
  return fd;
}

// Reads whatever count an eventfd holds, without blocking.
void drain_eventfd(int fd) {
  pollfd p{fd, POLLIN, 0};
  std::uint64_t count = 0;
  if (::poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0) (void)!::read(fd, &count, sizeof(count));
}

std::uint64_t page_round(std::uint64_t bytes) { return *checked_align_up<std::uint64_t>(bytes, page_size()); }

}  // namespace

Result<std::unique_ptr<PassthroughDevice>, DeviceError> PassthroughDevice::create(GuestMemory& memory,
                                                                                  std::vector<Disk> disks,
                                                                                  const PassthroughConfig& config) {
  const auto start = std::chrono::steady_clock::now();
  if (disks.empty()) return unexpected(config_error("a device needs at least one disk"));
  if (disks.size() > abi::kMaxDisks) return unexpected(config_error(fmt::format("at most {} disks", abi::kMaxDisks)));
  if (config.device_window.value() % page_size() != 0) {
    return unexpected(config_error(fmt::format("the device window {:#x} is not page-aligned", config.device_window.value())));
  }
  RestrictionSet restrictions;
  if (config.restrictions) {
    restrictions = *config.restrictions;
  } else {
    auto set = default_restrictions(disks);
    if (!set) return unexpected(std::move(set).error());
    restrictions = std::move(*set);
  }

  // How big the window must be: the descriptor (one window per fixed-buffer piece), then the
  // rings and the SQE array in the sizes this kernel wants.
  const std::vector<BufferRegion> buffers = memory.buffer_regions();
  if (buffers.empty()) return unexpected(config_error("guest memory has no writable region to register"));
  auto plan = BufferTable::plan(buffers);
  if (!plan) return unexpected(ring_error(plan.error()));
  if (plan->pieces().size() > abi::kMaxWindows) return unexpected(config_error("too many buffer windows"));
  RingOptions options;
  options.sq_entries = config.queue_depth;
  options.sqpoll = SqPollOptions{config.sqpoll_cpu, config.sqpoll_idle};
  auto layout = ring_memory_layout(options);
  if (!layout) return unexpected(ring_error(layout.error()));
  const auto window_count = static_cast<std::uint32_t>(plan->pieces().size());
  const std::uint64_t descriptor_bytes =
      page_round(abi::descriptor_bytes(static_cast<std::uint32_t>(disks.size()), window_count));
  const std::uint64_t window_bytes = descriptor_bytes + layout->rings_bytes + layout->sqes_bytes;
  auto window = memory.translate(config.device_window, window_bytes, DeviceAccess::WritesGuest);
  if (!window) {
    return unexpected(config_error(fmt::format("the device window ({:#x} bytes at {:#x}) must lie inside one writable "
                                               "region of guest RAM: {}", window_bytes, config.device_window.value(),
                                               window.error().message)));
  }
  std::byte* base = window->host;
  std::memset(base, 0, window_bytes);
  std::byte* rings = base + descriptor_bytes;
  options.caller_memory = CallerRingMemory{{rings, layout->rings_bytes}, {rings + layout->rings_bytes, layout->sqes_bytes}};

  auto disabled = DisabledRing::create(options);
  if (!disabled) return unexpected(ring_error(disabled.error()));
  std::vector<int> fds;
  for (const Disk& d : disks) fds.push_back(d.fd());
  if (auto r = disabled->register_files(fds); !r) return unexpected(ring_error(r.error()));
  auto table = disabled->register_buffers(buffers);
  if (!table) return unexpected(ring_error(table.error()));
  auto kick = make_eventfd("the doorbell");
  if (!kick) return unexpected(std::move(kick).error());
  auto notify = make_eventfd("completion notifications");
  if (!notify) return unexpected(std::move(notify).error());
  auto stop = make_eventfd("the doorbell thread's shutdown");
  if (!stop) return unexpected(std::move(stop).error());
  if (auto r = disabled->register_eventfd(notify->get()); !r) return unexpected(ring_error(r.error()));
  auto restricted = std::move(*disabled).restrict(restrictions);
  if (!restricted) return unexpected(ring_error(restricted.error()));
  auto ring = std::move(*restricted).enable();
  if (!ring) return unexpected(ring_error(ring.error()));
  drain_eventfd(notify->get());  // the self-check's completions signalled it

  std::unique_ptr<PassthroughDevice> device(new PassthroughDevice(std::move(*ring), std::move(disks)));
  PassthroughDevice& d = *device;
  d.kick_ = std::move(*kick);
  d.notify_ = std::move(*notify);
  d.stop_ = std::move(*stop);
  d.window_ = config.device_window;
  d.window_bytes_ = window_bytes;

  // The descriptor, in guest-physical terms.
  const RingInfo& info = d.ring_.info();
  // Every offset lies inside the device window, which translate() found inside one region, so
  // these moves cannot pass 2^64.
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
  h.disk_count = static_cast<std::uint32_t>(d.disks_.size());
  h.window_count = window_count;

  std::vector<abi::DiskEntry> disk_entries;
  for (std::size_t i = 0; i < d.disks_.size(); ++i) {
    const Disk& disk = d.disks_[i];
    disk_entries.push_back(abi::DiskEntry{static_cast<std::uint32_t>(i), disk.read_only() ? abi::kDiskReadOnly : 0u,
                                          disk.size_bytes(), disk.logical_block_size(), kDeviceMaxTransfer});
  }
  memory.set_buffer_table(std::move(*table));
  for (const BufferPiece& piece : memory.buffer_table()->pieces()) {
    const std::uint64_t gpa = memory.piece_base(piece).value();
    // The kernel checks host addresses: the guest adds this bias (mod 2^64) to a GPA.
    d.windows_.push_back(abi::WindowEntry{gpa, piece.len, piece.index.value, 0, piece.host_base - gpa});
  }
  // The table is sorted by host address; the guest reads windows in guest-physical order.
  std::sort(d.windows_.begin(), d.windows_.end(),
            [](const abi::WindowEntry& a, const abi::WindowEntry& b) { return a.gpa < b.gpa; });
  // SAFETY: the device window starts with `descriptor_bytes` bytes of guest RAM the VMM owns
  // until the guest starts; it was translated above and is page-aligned.
  auto* out = reinterpret_cast<unsigned char*>(base);
  if (abi::encode_descriptor(h, disk_entries.data(), d.windows_.data(), out, descriptor_bytes) == 0) {
    return unexpected(config_error("the ring descriptor does not fit its window"));
  }
  d.setup_time_ = std::chrono::steady_clock::now() - start;
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
