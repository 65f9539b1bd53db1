#include "host/thread_capabilities.h"

#include <linux/capability.h>

#include <cstring>

#include <fmt/format.h>

#include "sys/syscalls.h"

namespace rf {

namespace {

SystemError capability_error(const char* call, int err) {
  return SystemError{err, fmt::format("{}: {}", call, std::strerror(err))};
}

}  // namespace

Result<ThreadCapabilities, SystemError> thread_capabilities(int tid) {
  sys::RawCapabilitySets raw;
  if (const int rc = sys::capget(tid, raw); rc < 0) return unexpected(capability_error("capget", -rc));
  return ThreadCapabilities{raw.effective, raw.permitted, raw.inheritable};
}

Result<void, SystemError> set_thread_capabilities(const ThreadCapabilities& caps) {
  if (const int rc = sys::capset({caps.effective, caps.permitted, caps.inheritable}); rc < 0) {
    return unexpected(capability_error("capset", -rc));
  }
  return {};
}

Result<ScopedEffectiveCapabilities, SystemError> ScopedEffectiveCapabilities::lower_to(std::uint64_t keep) {
  auto saved = thread_capabilities();
  if (!saved) return unexpected(std::move(saved).error());
  ThreadCapabilities lowered = *saved;
  lowered.effective &= keep;
  if (lowered.effective != saved->effective) {
    if (auto set = set_thread_capabilities(lowered); !set) return unexpected(std::move(set).error());
  }
  return ScopedEffectiveCapabilities(*saved);
}

ScopedEffectiveCapabilities::ScopedEffectiveCapabilities(ScopedEffectiveCapabilities&& other) noexcept
    : saved_(other.saved_), active_(other.active_) {
  other.active_ = false;
}

ScopedEffectiveCapabilities::~ScopedEffectiveCapabilities() {
  // Raising the effective set within an unchanged permitted set is always allowed.
  if (active_) (void)set_thread_capabilities(saved_);
}

Result<void, SystemError> drop_thread_capabilities_except(std::uint64_t keep) {
  auto now = thread_capabilities();
  if (!now) return unexpected(std::move(now).error());
  const ThreadCapabilities dropped{now->effective & keep, now->permitted & keep, now->inheritable & keep};
  if (dropped.effective == now->effective && dropped.permitted == now->permitted && dropped.inheritable == now->inheritable) {
    return {};
  }
  return set_thread_capabilities(dropped);
}

std::uint64_t ring_capabilities() { return capability_bit(CAP_IPC_LOCK); }

}  // namespace rf
