// The C API's devices: rf_device over a PassthroughDevice or a MediatedDevice, its lifecycle
// and its counters.
#include <chrono>
#include <vector>

#include "capi/capi_internal.h"
#include "util/checked_math.h"

using namespace rf;
using namespace rf::capi;

namespace {

// The header's numbers are the library's own, so they can be passed through.
static_assert(static_cast<std::uint32_t>(abi::Mode::Passthrough) == RF_MODE_PASSTHROUGH);
static_assert(static_cast<std::uint32_t>(abi::Mode::Mediated) == RF_MODE_MEDIATED);
static_assert(static_cast<std::uint32_t>(BrokenReason::None) == RF_BROKEN_NONE);
static_assert(static_cast<std::uint32_t>(BrokenReason::SqTailJump) == RF_BROKEN_SQ_TAIL_JUMP);
static_assert(static_cast<std::uint32_t>(BrokenReason::CqHeadJump) == RF_BROKEN_CQ_HEAD_JUMP);
static_assert(static_cast<std::uint32_t>(BrokenReason::KernelRing) == RF_BROKEN_KERNEL_RING);
static_assert(static_cast<std::uint32_t>(BrokenReason::InFlightBound) == RF_BROKEN_IN_FLIGHT_BOUND);

// The first version's sizes end where the fields appended since begin.
static_assert(RF_DEVICE_CONFIG_SIZE_VER1 == offsetof(rf_device_config, device_poll_us));
static_assert(RF_DEVICE_COUNTERS_SIZE_VER1 == offsetof(rf_device_counters, in_flight_bound));
static_assert(RF_STOP_REPORT_SIZE_VER1 == sizeof(rf_stop_report));
static_assert(RF_DEVICE_MAX_QUEUE_DEPTH == kMaxDeviceQueueDepth);

constexpr std::uint32_t kKnownDeviceFlags = RF_DEVICE_PIN_SQPOLL | RF_DEVICE_PIN_MEDIATOR | RF_DEVICE_KERNEL_SQPOLL;
constexpr unsigned kDefaultQueueDepth = 64;

// The caller's config, checked and turned into the device's own.
struct DeviceConfig {
  abi::Mode mode = abi::Mode::Passthrough;
  PassthroughConfig passthrough;
  MediatedConfig mediated;
};

rf_status read_config(const char* function, const rf_device_config* in, DeviceConfig& out) {
  rf_device_config c;
  if (const rf_status s = read_sized(function, in, c); s != RF_OK) return s;
  if (c.mode != RF_MODE_PASSTHROUGH && c.mode != RF_MODE_MEDIATED) {
    return invalid_argument(function, fmt::format("mode is {}; use RF_MODE_PASSTHROUGH (1) or RF_MODE_MEDIATED (2)", c.mode));
  }
  if ((c.flags & ~kKnownDeviceFlags) != 0) {
    return invalid_argument(function, fmt::format("unknown flags {:#x}", c.flags & ~kKnownDeviceFlags));
  }
  const unsigned depth = c.queue_depth == 0 ? kDefaultQueueDepth : c.queue_depth;
  if (!is_power_of_two(depth) || depth > RF_DEVICE_MAX_QUEUE_DEPTH) {
    return invalid_argument(function, fmt::format("queue_depth {} is not a power of two from 1 to RF_DEVICE_MAX_QUEUE_DEPTH ({})",
                                                  depth, RF_DEVICE_MAX_QUEUE_DEPTH));
  }
  const bool passthrough = c.mode == RF_MODE_PASSTHROUGH;
  const bool kernel_sqpoll = (c.flags & RF_DEVICE_KERNEL_SQPOLL) != 0;
  if (c.reserved != 0) return invalid_argument(function, "reserved is not zero");
  if (!passthrough && ((c.flags & (RF_DEVICE_PIN_SQPOLL | RF_DEVICE_KERNEL_SQPOLL)) != 0 || c.sqpoll_idle_ms != 0 ||
                       c.share_sqpoll_with != nullptr || c.device_poll_us != 0)) {
    return invalid_argument(function, "the passthrough settings (RF_DEVICE_PIN_SQPOLL, RF_DEVICE_KERNEL_SQPOLL, sqpoll_idle_ms, "
                                      "share_sqpoll_with, device_poll_us) are for passthrough devices; this one is mediated");
  }
  if (passthrough && ((c.flags & RF_DEVICE_PIN_MEDIATOR) != 0 || c.mediator_poll_us != 0)) {
    return invalid_argument(function, "the mediator settings are for mediated devices; this one is passthrough");
  }
  if (passthrough && !kernel_sqpoll && (c.sqpoll_idle_ms != 0 || c.share_sqpoll_with != nullptr)) {
    return invalid_argument(function, "sqpoll_idle_ms and share_sqpoll_with need RF_DEVICE_KERNEL_SQPOLL (the device "
                                      "thread takes the guest's SQEs otherwise, and there is no SQPOLL thread)");
  }
  if (kernel_sqpoll && c.device_poll_us != 0) {
    return invalid_argument(function, "device_poll_us is for the device thread, which RF_DEVICE_KERNEL_SQPOLL replaces");
  }
  if (c.share_sqpoll_with != nullptr &&
      (c.share_sqpoll_with->device->mode() != abi::Mode::Passthrough ||
       static_cast<const PassthroughDevice&>(*c.share_sqpoll_with->device).submitter() != PassthroughSubmitter::KernelSqpoll)) {
    return invalid_argument(function, "share_sqpoll_with names a device without an SQPOLL thread (mediated, or passthrough "
                                      "without RF_DEVICE_KERNEL_SQPOLL)");
  }
  if (c.policy != nullptr) {
    const rf_mode policy_mode = rf_policy_mode(c.policy);
    if (policy_mode != static_cast<rf_mode>(c.mode)) {
      return fail(RF_E_POLICY, 0,
                  fmt::format("{}: policy {} is written for {} mode and this device is {}: load a {} policy "
                              "(built-in: {}) or pass NULL for the default",
                              function, c.policy->policy.name, policy_mode == RF_MODE_PASSTHROUGH ? "passthrough" : "mediated",
                              passthrough ? "passthrough" : "mediated", passthrough ? "passthrough" : "mediated",
                              passthrough ? "blk-passthrough" : "blk-mediated"));
    }
  }

  out.mode = passthrough ? abi::Mode::Passthrough : abi::Mode::Mediated;
  std::optional<RestrictionSet> restrictions;
  if (c.policy != nullptr) restrictions = c.policy->restrictions;
  auto& p = out.passthrough;
  p.device_window = GuestAddress{c.device_window_gpa};
  p.queue_depth = depth;
  p.submitter = kernel_sqpoll ? PassthroughSubmitter::KernelSqpoll : PassthroughSubmitter::DeviceThread;
  if (c.device_poll_us != 0) p.poll_idle = std::chrono::microseconds(c.device_poll_us);
  if ((c.flags & RF_DEVICE_PIN_SQPOLL) != 0) p.cpu = c.sqpoll_cpu;
  if (c.sqpoll_idle_ms != 0) p.sqpoll_idle = std::chrono::milliseconds(c.sqpoll_idle_ms);
  if (c.share_sqpoll_with != nullptr) p.share_sqpoll_with = static_cast<const PassthroughDevice*>(c.share_sqpoll_with->device.get());
  p.restrictions = restrictions;
  auto& m = out.mediated;
  m.device_window = GuestAddress{c.device_window_gpa};
  m.queue_depth = depth;
  if ((c.flags & RF_DEVICE_PIN_MEDIATOR) != 0) m.mediator.cpu = c.mediator_cpu;
  if (c.mediator_poll_us != 0) m.mediator.poll_idle = std::chrono::microseconds(c.mediator_poll_us);
  m.restrictions = std::move(restrictions);
  return RF_OK;
}

rf_status check_disk_count(const char* function, std::size_t count) {
  if (count == 0 || count > abi::kMaxDisks) {
    return invalid_argument(function, fmt::format("disk_count is {}: a device takes 1 to {} disks", count, abi::kMaxDisks));
  }
  return RF_OK;
}

rf_status check_disks(const char* function, const rf_disk* const* disks, std::size_t count) {
  if (disks == nullptr) return invalid_argument(function, "disks is NULL");
  if (const rf_status s = check_disk_count(function, count); s != RF_OK) return s;
  for (std::size_t i = 0; i < count; ++i) {
    if (disks[i] == nullptr) return invalid_argument(function, fmt::format("disks[{}] is NULL", i));
  }
  return RF_OK;
}

rf_device_state to_c(DeviceState state) {
  switch (state) {
    case DeviceState::Created: return RF_DEVICE_CREATED;
    case DeviceState::Running: return RF_DEVICE_RUNNING;
    case DeviceState::Quiesced: return RF_DEVICE_QUIESCED;
    case DeviceState::Stopped: return RF_DEVICE_STOPPED;
  }
  return RF_DEVICE_STOPPED;
}

rf_status status_of(const Result<void, DeviceError>& r) { return r ? RF_OK : fail_with(r.error()); }

}  // namespace

extern "C" {

rf_status rf_device_window_size(const rf_memory* memory, size_t disk_count, const rf_device_config* config,
                                uint64_t* bytes) {
  const char* const fn = __func__;
  return guarded(fn, [&] {
    if (memory == nullptr || bytes == nullptr) return invalid_argument(fn, "memory or bytes is NULL");
    if (const rf_status s = check_disk_count(fn, disk_count); s != RF_OK) return s;
    DeviceConfig c;
    if (const rf_status s = read_config(fn, config, c); s != RF_OK) return s;
    auto needed = c.mode == abi::Mode::Passthrough ? PassthroughDevice::window_bytes(memory->memory(), disk_count, c.passthrough)
                                                   : MediatedDevice::window_bytes(memory->memory(), disk_count, c.mediated);
    if (!needed) return fail_with(needed.error());
    *bytes = *needed;
    return RF_OK;
  });
}

rf_status rf_device_create(rf_memory* memory, const rf_disk* const* disks, size_t disk_count,
                           const rf_device_config* config, rf_device** out) {
  const char* const fn = __func__;
  return guarded(fn, [&] {
    if (memory == nullptr || out == nullptr) return invalid_argument(fn, "memory or out is NULL");
    if (const rf_status s = check_disks(fn, disks, disk_count); s != RF_OK) return s;
    DeviceConfig c;
    if (const rf_status s = read_config(fn, config, c); s != RF_OK) return s;
    // The device's own handles: the caller may close its disks once the device exists.
    std::vector<Disk> own;
    own.reserve(disk_count);
    for (std::size_t i = 0; i < disk_count; ++i) {
      auto handle = disks[i]->disk.duplicate();
      if (!handle) return fail_with(handle.error());
      own.push_back(std::move(*handle));
    }
    std::unique_ptr<GuestDevice> device;
    if (c.mode == abi::Mode::Passthrough) {
      auto d = PassthroughDevice::create(memory->map, std::move(own), c.passthrough);
      if (!d) return fail_with(d.error());
      device = std::move(*d);
    } else {
      auto d = MediatedDevice::create(memory->map, std::move(own), c.mediated);
      if (!d) return fail_with(d.error());
      device = std::move(*d);
    }
    *out = new rf_device(*memory, std::move(device));
    return RF_OK;
  });
}

rf_mode rf_device_mode(const rf_device* device) {
  if (device == nullptr) return static_cast<rf_mode>(0);
  return device->device->mode() == abi::Mode::Passthrough ? RF_MODE_PASSTHROUGH : RF_MODE_MEDIATED;
}

rf_device_state rf_device_state_of(const rf_device* device) {
  return device == nullptr ? RF_DEVICE_STOPPED : to_c(device->device->state());
}

uint64_t rf_device_descriptor_gpa(const rf_device* device) {
  return device == nullptr ? 0 : device->device->descriptor_address().value();
}

uint64_t rf_device_window_bytes(const rf_device* device) {
  return device == nullptr ? 0 : device->device->device_window_bytes();
}

int rf_device_kick_fd(const rf_device* device) { return device == nullptr ? -1 : device->device->kick_fd(); }

int rf_device_notify_fd(const rf_device* device) { return device == nullptr ? -1 : device->device->notify_fd(); }

rf_status rf_device_start(rf_device* device) {
  const char* const fn = __func__;
  return guarded(fn, [&] {
    if (device == nullptr) return invalid_argument(fn, "device is NULL");
    return status_of(device->device->start());
  });
}

rf_status rf_device_quiesce(rf_device* device, uint32_t timeout_ms) {
  const char* const fn = __func__;
  return guarded(fn, [&] {
    if (device == nullptr) return invalid_argument(fn, "device is NULL");
    return status_of(device->device->quiesce(std::chrono::milliseconds(timeout_ms)));
  });
}

rf_status rf_device_resume(rf_device* device) {
  const char* const fn = __func__;
  return guarded(fn, [&] {
    if (device == nullptr) return invalid_argument(fn, "device is NULL");
    return status_of(device->device->resume());
  });
}

rf_status rf_device_stop(rf_device* device, uint32_t drain_timeout_ms, rf_stop_report* report) {
  const char* const fn = __func__;
  return guarded(fn, [&] {
    if (device == nullptr) return invalid_argument(fn, "device is NULL");
    if (report != nullptr) {
      // Checked before stopping, so that a bad struct_size does not leave the report unsaid.
      std::uint32_t size = 0;
      if (const rf_status s = read_struct_size(fn, report, size); s != RF_OK) return s;
    }
    if (!device->stop_report) {
      const DeviceStopReport r = device->device->stop(std::chrono::milliseconds(drain_timeout_ms));
      rf_stop_report c{};
      c.struct_size = sizeof c;
      c.released = r.released ? 1 : 0;
      c.drained = r.drained;
      c.cancelled = r.cancelled;
      c.counted = r.counted ? 1 : 0;
      device->stop_report = c;
    }
    return report == nullptr ? RF_OK : write_sized(fn, *device->stop_report, report);
  });
}

rf_status rf_device_counters_of(const rf_device* device, rf_device_counters* out) {
  const char* const fn = __func__;
  return guarded(fn, [&] {
    if (device == nullptr) return invalid_argument(fn, "device is NULL");
    const GuestDevice& d = *device->device;
    rf_device_counters c{};
    c.state = to_c(d.state());
    c.in_flight = d.in_flight().value_or(RF_COUNT_UNKNOWN);
    c.completions = d.completions_posted().value_or(RF_COUNT_UNKNOWN);
    c.in_flight_bound = d.in_flight_bound();
    c.broken = static_cast<std::uint32_t>(d.broken().reason);
    if (d.mode() == abi::Mode::Mediated) {
      const MediatorCounters m = static_cast<const MediatedDevice&>(d).counters();
      c.consumed = m.consumed;
      c.submitted = m.submitted;
      c.refused = m.refused_total();
      c.cancelled = m.cancelled;
    } else {
      const auto& p = static_cast<const PassthroughDevice&>(d);
      c.consumed = p.taken().value_or(RF_COUNT_UNKNOWN);
      c.submitted = p.submitted();
      c.wakeups = p.doorbells();
      c.throttled = p.throttled();
    }
    return write_sized(fn, c, out);
  });
}

void rf_device_destroy(rf_device* device) { delete device; }

}  // extern "C"
