#include "device/guest_device.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "device/device_thread.h"
#include "host/thread_capabilities.h"
#include "restrictions/policy_compiler.h"
#include "restrictions/policy_loader.h"
#include "ring/fresh_ring_memory.h"
#include "ring/setup.h"
#include "util/address.h"

namespace rf {

std::string_view device_state_name(DeviceState state) {
  switch (state) {
    case DeviceState::Created: return "created";
    case DeviceState::Running: return "running";
    case DeviceState::Quiesced: return "quiesced";
    case DeviceState::Stopped: return "stopped";
  }
  return "unknown";
}

namespace {

DeviceError wrong_state(std::string_view call, DeviceState state, std::string_view needed) {
  return DeviceError{DeviceErrc::WrongState, 0,
                     fmt::format("{} needs a {} device; this one is {}", call, needed, device_state_name(state))};
}

}  // namespace

Result<void, DeviceError> GuestDevice::start() {
  if (state() != DeviceState::Created) return unexpected(wrong_state("start", state(), "created"));
  RF_TRY_VOID(start_io());
  state_.store(DeviceState::Running, std::memory_order_release);
  return {};
}

Result<void, DeviceError> GuestDevice::quiesce(std::chrono::milliseconds timeout) {
  if (state() == DeviceState::Quiesced) return {};
  if (state() != DeviceState::Running) return unexpected(wrong_state("quiesce", state(), "running"));
  pause_intake();
  if (auto drained = wait_drained(timeout); !drained) {
    resume_intake();
    return unexpected(std::move(drained).error());
  }
  state_.store(DeviceState::Quiesced, std::memory_order_release);
  return {};
}

Result<void, DeviceError> GuestDevice::resume() {
  if (state() != DeviceState::Quiesced) return unexpected(wrong_state("resume", state(), "quiesced"));
  resume_intake();
  state_.store(DeviceState::Running, std::memory_order_release);
  return {};
}

DeviceStopReport GuestDevice::stop(std::chrono::milliseconds drain_timeout) {
  const DeviceState was = state();
  if (was == DeviceState::Stopped) return {};
  const auto posted_before = completions_posted();
  if (was == DeviceState::Running) {
    pause_intake();
    (void)wait_drained(drain_timeout);  // what is left is cancelled below
  }
  const auto posted_after = completions_posted();
  DeviceStopReport report = stop_io();
  // A ring not seen released may still write its rings: no later device may have the window.
  if (!report.released) window_claim_.keep_forever();
  if (posted_before && posted_after) report.drained = *posted_after - *posted_before;
  state_.store(DeviceState::Stopped, std::memory_order_release);
  return report;
}

DeviceError config_error(std::string message) { return DeviceError{DeviceErrc::InvalidConfig, 0, std::move(message)}; }

DeviceError ring_error(const Error<RingErrc>& e) {
  // Options the ring library refused before (or as) the kernel saw them are the caller's
  // configuration; the rest is the kernel's answer.
  const DeviceErrc code = e.code == RingErrc::InvalidOptions ? DeviceErrc::InvalidConfig : DeviceErrc::Ring;
  return DeviceError{code, e.sys_errno, e.message};
}

Result<void, DeviceError> check_device_config(std::size_t disk_count, unsigned queue_depth, std::optional<unsigned> cpu) {
  if (disk_count == 0) return unexpected(config_error("a device needs at least one disk"));
  if (disk_count > abi::kMaxDisks) {
    return unexpected(config_error(fmt::format("{} disks: a device takes at most {}", disk_count, abi::kMaxDisks)));
  }
  if (!is_power_of_two(queue_depth) || queue_depth > kMaxDeviceQueueDepth) {
    return unexpected(config_error(fmt::format("the queue depth must be a power of two from 1 to {} (it is {})",
                                               kMaxDeviceQueueDepth, queue_depth)));
  }
  if (cpu) RF_TRY_VOID(check_device_cpu(*cpu));
  return {};
}

Result<void, DeviceError> check_device_basics(const std::vector<Disk>& disks, GuestAddress device_window,
                                              unsigned queue_depth, std::optional<unsigned> cpu) {
  RF_TRY_VOID(check_device_config(disks.size(), queue_depth, cpu));
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

Result<std::size_t, DeviceError> count_buffer_windows(const GuestMemory& memory) {
  const std::size_t windows = memory.buffer_plan().pieces().size();
  if (windows == 0) return unexpected(config_error("guest memory has no writable region to register"));
  if (windows > abi::kMaxWindows) {
    return unexpected(config_error(fmt::format("guest memory makes {} fixed buffers; the descriptor lists at most {}", windows,
                                               abi::kMaxWindows)));
  }
  return windows;
}

Result<Ring, DeviceError> build_device_ring(const RingOptions& options, const std::vector<Disk>& disks,
                                            const GuestMemory& memory, int eventfd, const RestrictionSet& restrictions,
                                            DeviceSetupTimes& times, int release_probe) {
  auto lowered = ScopedEffectiveCapabilities::lower_to(ring_capabilities());
  if (!lowered) {
    return unexpected(DeviceError{DeviceErrc::System, lowered.error().sys_errno,
                                  "lowering the capabilities the ring is created with: " + lowered.error().message});
  }
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
  if (release_probe >= 0) fds.push_back(release_probe);  // after the disks: no disk index names it
  if (auto r = disabled->register_files(fds); !r) return unexpected(ring_error(r.error()));
  lap(times.register_files);
  // The map's own plan: every device on the map registers the same buffers, and nothing is
  // written back to the map (which other devices' threads read).
  if (auto r = disabled->register_buffer_table(memory.buffer_plan()); !r) return unexpected(ring_error(r.error()));
  lap(times.register_buffers);
  if (auto r = disabled->register_eventfd(eventfd); !r) return unexpected(ring_error(r.error()));
  auto restricted = std::move(*disabled).restrict(restrictions);
  if (!restricted) return unexpected(ring_error(restricted.error()));
  lap(times.restrict_ring);
  auto ring = std::move(*restricted).enable();
  if (!ring) return unexpected(ring_error(ring.error()));
  drain_eventfd(eventfd);  // the self-check's completions signalled it
  lap(times.enable);
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

Result<ClaimedWindow, DeviceError> claim_device_window(const GuestMemory& memory, GuestAddress window, std::uint64_t bytes) {
  auto span = memory.translate(window, bytes, DeviceAccess::WritesGuest);
  if (!span) {
    return unexpected(config_error(fmt::format("the device window ({:#x} bytes at {:#x}) must lie inside one writable "
                                               "region of guest RAM: {}", bytes, window.value(), span.error().describe())));
  }
  // Before touching a byte of it: the range may be another device's rings.
  auto claim = memory.window_claims().claim(window, bytes);
  if (!claim) return unexpected(config_error(std::move(claim).error()));
  // Fresh pages for all of it, descriptor included: an earlier device's ring in this window may
  // still be being freed, and write its old pages (ring/fresh_ring_memory.h; the ring library
  // does the same again for the ring part, as for any ring in caller memory).
  // SAFETY: [host, host + bytes) is inside one writable region of guest RAM (translate above)
  // and is claimed for this device alone: no guest data and no other device's rings live there.
  give_fresh_pages({span->host, static_cast<std::size_t>(bytes)});
  return ClaimedWindow{std::move(*claim), span->host};
}

std::uint64_t descriptor_window_bytes(std::size_t disks, std::size_t windows) {
  const std::uint64_t raw = abi::descriptor_bytes(static_cast<std::uint32_t>(disks), static_cast<std::uint32_t>(windows));
  return *checked_align_up<std::uint64_t>(raw, page_size());  // at most a few hundred KiB
}

std::vector<abi::WindowEntry> buffer_windows(const GuestMemory& memory, abi::Mode mode) {
  std::vector<abi::WindowEntry> windows;
  for (const BufferWindow& w : memory.buffer_windows()) {  // in guest-physical order, as the guest reads them
    // Passthrough: the kernel checks host addresses, so the guest adds this bias (mod 2^64).
    const std::uint64_t bias = mode == abi::Mode::Passthrough ? address_of(w.host) - w.base.value() : 0;
    windows.push_back(abi::WindowEntry{w.base.value(), w.bytes, w.index.value, 0, bias});
  }
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
