// The ring module's error: one code per syscall that can fail, plus semantic codes that carry
// the offending value in the message.
#pragma once

#include <string>

#include "util/result.h"

namespace rf {

enum class RingErrc {
  InvalidOptions,        // RingOptions that cannot work (entries, memory alignment, sizes)
  IoUringUnavailable,    // io_uring_setup: ENOSYS, or EPERM (kernel.io_uring_disabled, seccomp)
  Unsupported,           // io_uring_setup / restrictions: EINVAL for a flag this kernel lacks
  Setup,                 // io_uring_setup, any other errno
  Mmap,                  // mapping the rings or the SQE array
  RegisterFiles,
  RegisterBuffers,
  MemlockLimit,          // buffer registration hit RLIMIT_MEMLOCK
  RegisterEventfd,
  RegisterRestrictions,
  Enable,
  SelfCheck,             // restrictions were registered but are not in force
  Enter,                 // io_uring_enter
  Timeout,               // no completion within the caller's deadline
  RegisterDenied,        // a register call after enable returned EACCES (the policy denies it)
  RegisterIowqAffinity,  // IORING_REGISTER_IOWQ_AFF
};

using RingError = Error<RingErrc>;

// "EACCES (Permission denied)"
std::string errno_label(int err);

}  // namespace rf
