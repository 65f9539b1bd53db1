// The one place that includes <linux/io_uring.h>, and that fills in what Debian 12's uapi
// headers (Linux 6.1, shipped with liburing 2.3) lack. Private to the core: public headers
// expose typed wrappers only.
#pragma once

#include <linux/io_uring.h>

#include <cstdint>

// Setup flags added after Linux 6.1 (values from the upstream uapi header).
#ifndef IORING_SETUP_NO_MMAP
#define IORING_SETUP_NO_MMAP (1U << 14)  // 6.5: rings live in caller-provided memory
#endif
#ifndef IORING_SETUP_REGISTERED_FD_ONLY
#define IORING_SETUP_REGISTERED_FD_ONLY (1U << 15)  // 6.5
#endif
#ifndef IORING_SETUP_NO_SQARRAY
#define IORING_SETUP_NO_SQARRAY (1U << 16)  // 6.6: SQ tail indexes the SQE array directly
#endif

// The sysctl that can switch io_uring off (6.6+): 0 enabled, 1 privileged only, 2 disabled.
inline constexpr const char* kIoUringDisabledSysctl = "/proc/sys/kernel/io_uring_disabled";

namespace rf::sys {

// Linux 6.5 renamed io_sqring_offsets::resv2 / io_cqring_offsets::resv2 to user_addr (the
// caller-provided memory for IORING_SETUP_NO_MMAP). Older headers only have the old name.
template <typename Offsets>
auto& user_addr(Offsets& off) {
  if constexpr (requires { off.user_addr; }) {
    return off.user_addr;
  } else {
    static_assert(sizeof(off.resv2) == sizeof(std::uint64_t));
    return off.resv2;
  }
}

// ABI sizes that the rest of the core relies on.
static_assert(sizeof(io_uring_sqe) == 64);
static_assert(sizeof(io_uring_cqe) == 16);
static_assert(sizeof(io_uring_restriction) == 16);
static_assert(sizeof(io_uring_params) == 120);

}  // namespace rf::sys
