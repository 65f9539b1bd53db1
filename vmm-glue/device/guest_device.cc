#include "device/guest_device.h"

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

namespace rf {

DeviceError config_error(std::string message) { return DeviceError{DeviceErrc::InvalidConfig, 0, std::move(message)}; }

DeviceError ring_error(const Error<RingErrc>& e) { return DeviceError{DeviceErrc::Ring, e.sys_errno, e.message}; }

Result<void, DeviceError> check_device_basics(const std::vector<Disk>& disks, GuestAddress device_window) {
  if (disks.empty()) return unexpected(config_error("a device needs at least one disk"));
  if (disks.size() > abi::kMaxDisks) return unexpected(config_error(fmt::format("at most {} disks", abi::kMaxDisks)));
  if (device_window.value() % page_size() != 0) {
    return unexpected(config_error(fmt::format("the device window {:#x} is not page-aligned", device_window.value())));
  }
  return {};
}

Result<RestrictionSet, DeviceError> device_restrictions(const std::optional<RestrictionSet>& chosen,
                                                        std::string_view default_policy) {
  if (chosen) return *chosen;
  auto policy = policy::load_policy(default_policy);
  if (!policy) return unexpected(config_error(fmt::format("the built-in policy {} does not load", default_policy)));
  return policy::compile_policy(*policy);
}

Result<BufferPlan, DeviceError> plan_guest_buffers(const GuestMemory& memory) {
  BufferPlan plan{memory.buffer_regions(), 0};
  if (plan.regions.empty()) return unexpected(config_error("guest memory has no writable region to register"));
  auto table = BufferTable::plan(plan.regions);
  if (!table) return unexpected(ring_error(table.error()));
  plan.windows = table->pieces().size();
  if (plan.windows > abi::kMaxWindows) return unexpected(config_error("too many buffer windows"));
  return plan;
}

Result<Ring, DeviceError> build_device_ring(const RingOptions& options, const std::vector<Disk>& disks,
                                            GuestMemory& memory, const BufferPlan& buffers, int eventfd,
                                            const RestrictionSet& restrictions, DeviceSetupTimes& times) {
  auto mark = std::chrono::steady_clock::now();
  const auto lap = [&mark](std::chrono::nanoseconds& into) {
    const auto now = std::chrono::steady_clock::now();
    into = now - mark;
    mark = now;
  };
  auto disabled = DisabledRing::create(options);
  if (!disabled) return unexpected(ring_error(disabled.error()));
  lap(times.create_ring);
  std::vector<int> fds;
  for (const Disk& d : disks) fds.push_back(d.fd());
  if (auto r = disabled->register_files(fds); !r) return unexpected(ring_error(r.error()));
  lap(times.register_files);
  auto table = disabled->register_buffers(buffers.regions);
  if (!table) return unexpected(ring_error(table.error()));
  lap(times.register_buffers);
  if (auto r = disabled->register_eventfd(eventfd); !r) return unexpected(ring_error(r.error()));
  auto restricted = std::move(*disabled).restrict(restrictions);
  if (!restricted) return unexpected(ring_error(restricted.error()));
  lap(times.restrict_ring);
  auto ring = std::move(*restricted).enable();
  if (!ring) return unexpected(ring_error(ring.error()));
  drain_eventfd(eventfd);  // the self-check's completions signalled it
  lap(times.enable);
  memory.set_buffer_table(std::move(*table));
  return std::move(*ring);
}

Result<UniqueFd, DeviceError> make_eventfd(const char* what) {
  UniqueFd fd(::eventfd(0, EFD_CLOEXEC));
  if (!fd) {
    const int err = errno;
    return unexpected(DeviceError{DeviceErrc::Eventfd, err, fmt::format("eventfd for {}: {}", what, std::strerror(err))});
  }
  return fd;
}

void drain_eventfd(int fd) {
  pollfd p{fd, POLLIN, 0};
  std::uint64_t count = 0;
  if (::poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0) (void)!::read(fd, &count, sizeof(count));
}

Result<std::byte*, DeviceError> claim_device_window(const GuestMemory& memory, GuestAddress window, std::uint64_t bytes) {
  auto span = memory.translate(window, bytes, DeviceAccess::WritesGuest);
  if (!span) {
    return unexpected(config_error(fmt::format("the device window ({:#x} bytes at {:#x}) must lie inside one writable "
                                               "region of guest RAM: {}", bytes, window.value(), span.error().message)));
  }
  std::memset(span->host, 0, bytes);
  return span->host;
}

std::uint64_t descriptor_window_bytes(std::size_t disks, std::size_t windows) {
  const std::uint64_t raw = abi::descriptor_bytes(static_cast<std::uint32_t>(disks), static_cast<std::uint32_t>(windows));
  return *checked_align_up<std::uint64_t>(raw, page_size());  // at most a few hundred KiB
}

std::vector<abi::WindowEntry> buffer_windows(const GuestMemory& memory, abi::Mode mode) {
  std::vector<abi::WindowEntry> windows;
  if (!memory.buffer_table()) return windows;
  for (const BufferPiece& piece : memory.buffer_table()->pieces()) {
    const std::uint64_t gpa = memory.piece_base(piece).value();
    // Passthrough: the kernel checks host addresses, so the guest adds this bias (mod 2^64).
    const std::uint64_t bias = mode == abi::Mode::Passthrough ? piece.host_base - gpa : 0;
    windows.push_back(abi::WindowEntry{gpa, piece.len, piece.index.value, 0, bias});
  }
  // The table is sorted by host address; the guest reads windows in guest-physical order.
  std::sort(windows.begin(), windows.end(),
            [](const abi::WindowEntry& a, const abi::WindowEntry& b) { return a.gpa < b.gpa; });
  return windows;
}

std::vector<abi::DiskEntry> disk_entries(const std::vector<Disk>& disks) {
  std::vector<abi::DiskEntry> entries;
  for (std::size_t i = 0; i < disks.size(); ++i) {
    const Disk& disk = disks[i];
    entries.push_back(abi::DiskEntry{static_cast<std::uint32_t>(i), disk.read_only() ? abi::kDiskReadOnly : 0u,
                                     disk.size_bytes(), disk.logical_block_size(), kDeviceMaxTransfer});
  }
  return entries;
}

Result<void, DeviceError> write_descriptor(std::byte* host, std::uint64_t bytes, const abi::DescriptorHeader& header,
                                           const std::vector<Disk>& disks, const std::vector<abi::WindowEntry>& windows) {
  const std::vector<abi::DiskEntry> entries = disk_entries(disks);
  // SAFETY: `host` is the start of the device window, `bytes` long, claimed by
  // claim_device_window; the guest has not started yet.
  auto* out = reinterpret_cast<unsigned char*>(host);
  if (abi::encode_descriptor(header, entries.data(), windows.data(), out, bytes) == 0) {
    return unexpected(config_error("the ring descriptor does not fit its window"));
  }
  return {};
}

}  // namespace rf
