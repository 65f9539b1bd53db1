// Registering a ring's fixed files: the only files an SQE with IOSQE_FIXED_FILE can name.
#pragma once

#include <span>

#include "ring/ring_error.h"

namespace rf {

// The kernel's cap on a fixed-file table (IORING_MAX_FIXED_FILES); RLIMIT_NOFILE also applies.
inline constexpr std::size_t kMaxFixedFiles = 1U << 20;

// Registers `fds` (borrowed: the kernel takes its own references) as fixed files 0..n-1.
// Every descriptor must be open; sparse (-1) slots are refused because a ring that serves
// disks has no use for empty slots a later update could fill.
Result<void, RingError> register_files(int ring_fd, std::span<const int> fds);

}  // namespace rf
