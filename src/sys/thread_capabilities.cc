#include "sys/thread_capabilities.h"

#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace rf::sys {

namespace {

// Version 3: two 32-bit words per set.
struct RawCaps {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3]{};
};

std::uint64_t join(std::uint32_t low, std::uint32_t high) { return std::uint64_t{high} << 32 | low; }

}  // namespace

Result<ThreadCapabilities, SystemError> thread_capabilities(int tid) {
  RawCaps raw;
  raw.header.pid = tid;
  // SAFETY: version 3 expects an array of _LINUX_CAPABILITY_U32S_3 data structs; pid 0 is the
  // calling thread.
  if (::syscall(SYS_capget, &raw.header, raw.data) != 0) {
    const int err = errno;
    return unexpected(SystemError{err, fmt::format("capget: {}", std::strerror(err))});
  }
  return ThreadCapabilities{join(raw.data[0].effective, raw.data[1].effective),
                            join(raw.data[0].permitted, raw.data[1].permitted),
                            join(raw.data[0].inheritable, raw.data[1].inheritable)};
}

Result<void, SystemError> set_thread_capabilities(const ThreadCapabilities& caps) {
  RawCaps raw;
  raw.data[0] = {static_cast<std::uint32_t>(caps.effective), static_cast<std::uint32_t>(caps.permitted),
                 static_cast<std::uint32_t>(caps.inheritable)};
  raw.data[1] = {static_cast<std::uint32_t>(caps.effective >> 32), static_cast<std::uint32_t>(caps.permitted >> 32),
                 static_cast<std::uint32_t>(caps.inheritable >> 32)};
  // SAFETY: as in capget; the raw syscall changes only the calling thread (glibc's capset
  // wrapper is the same system call, also per thread).
  if (::syscall(SYS_capset, &raw.header, raw.data) != 0) {
    const int err = errno;
    return unexpected(SystemError{err, fmt::format("capset: {}", std::strerror(err))});
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

}  // namespace rf::sys
