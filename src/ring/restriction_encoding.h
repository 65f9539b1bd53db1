// The one conversion from a RestrictionSet to the kernel's struct io_uring_restriction array.
// Private to the ring module (it includes the uapi header).
#pragma once

#include <vector>

#include "ring/restriction.h"
#include "sys/uapi_compat.h"

namespace rf {

// Under RegisterRestrictionModel::TrackedSeparately (Linux 7.0+), a set that allows no
// register opcode would leave register calls unrestricted, so the encoder adds one
// REGISTER_OP entry for REGISTER_ENABLE_RINGS: that call is a no-op once the ring is enabled
// (-EBADFD), and its presence makes the kernel lock every other register opcode. The
// self-check still verifies the lock on every ring.
std::vector<io_uring_restriction> encode_restrictions(const RestrictionSet& set, RegisterRestrictionModel model);

}  // namespace rf
