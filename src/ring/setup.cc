#include "ring/setup.h"

#include <sched.h>

#include <cerrno>

#include <fmt/format.h>

#include "ring/kernel_facts.h"
#include "ring/registered_files.h"
#include "ring/restriction_encoding.h"
#include "sys/syscalls.h"

namespace rf {

RegisterRestrictionModel running_register_restriction_model() {
  static const RegisterRestrictionModel model = register_restriction_model_for(kernel_release().c_str());
  return model;
}

Result<DisabledRing, RingError> DisabledRing::create(const RingOptions& options) {
  if (options.sqpoll && options.sqpoll->workers_on_sqpoll_cpu && !options.sqpoll->cpu) {
    return unexpected(RingError{RingErrc::InvalidOptions, EINVAL,
                                "SqPollOptions::workers_on_sqpoll_cpu needs the SQPOLL thread's cpu"});
  }
  auto core = RingCore::create(options);
  if (!core) return unexpected(std::move(core).error());
  if (options.sqpoll && options.sqpoll->workers_on_sqpoll_cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(*options.sqpoll->cpu, &set);
    const int rc = sys::io_uring_register(core->fd(), IORING_REGISTER_IOWQ_AFF, &set, sizeof(set));
    if (rc < 0) {
      return unexpected(RingError{rc == -EINVAL ? RingErrc::Unsupported : RingErrc::RegisterIowqAffinity, -rc,
                                  fmt::format("IORING_REGISTER_IOWQ_AFF (io-wq workers on the SQPOLL thread's CPU {}) "
                                              "failed: {}", *options.sqpoll->cpu, errno_label(-rc))});
    }
  }
  return DisabledRing(std::move(*core));
}

Result<void, RingError> DisabledRing::register_files(std::span<const int> fds) { return rf::register_files(core_.fd(), fds); }

Result<BufferTable, RingError> DisabledRing::register_buffers(std::span<const BufferRegion> regions) {
  return plan_and_register_buffers(core_.fd(), regions);
}

Result<void, RingError> DisabledRing::register_buffer_table(const BufferTable& table) {
  return rf::register_buffers(core_.fd(), table);
}

Result<void, RingError> DisabledRing::register_eventfd(int eventfd) {
  const int rc = sys::io_uring_register(core_.fd(), IORING_REGISTER_EVENTFD, &eventfd, 1);
  if (rc < 0) {
    return unexpected(RingError{RingErrc::RegisterEventfd, -rc,
                                fmt::format("IORING_REGISTER_EVENTFD (fd {}) failed: {}", eventfd, errno_label(-rc))});
  }
  return {};
}

Result<RestrictedRing, RingError> DisabledRing::restrict(const RestrictionSet& set) && {
  const auto entries = encode_restrictions(set, running_register_restriction_model());
  const int rc = sys::io_uring_register(core_.fd(), IORING_REGISTER_RESTRICTIONS, entries.data(),
                                        static_cast<unsigned>(entries.size()));
  if (rc < 0) {
    const int err = -rc;
    std::string message = fmt::format("IORING_REGISTER_RESTRICTIONS ({} entries) failed: {}", entries.size(), errno_label(err));
    if (err == EINVAL) {
      message += fmt::format(". Kernel {} rejects an entry (an opcode newer than the kernel) or has no "
                             "restrictions (before Linux 5.10)",
                             kernel_release());
    }
    return unexpected(RingError{err == EINVAL ? RingErrc::Unsupported : RingErrc::RegisterRestrictions, err,
                                std::move(message)});
  }
  return RestrictedRing(std::move(core_), set);
}

Result<Ring, RingError> RestrictedRing::enable() && {
  const int rc = sys::io_uring_register(core_.fd(), IORING_REGISTER_ENABLE_RINGS, nullptr, 0);
  if (rc < 0) {
    return unexpected(RingError{RingErrc::Enable, -rc,
                                fmt::format("IORING_REGISTER_ENABLE_RINGS failed: {}", errno_label(-rc))});
  }
  Ring ring(std::move(core_), std::move(set_));
  auto report = verify_restrictions(ring, ring.restrictions());
  if (!report) return unexpected(std::move(report).error());
  ring.self_check_ = *report;
  return ring;
}

}  // namespace rf
