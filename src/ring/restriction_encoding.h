// The one conversion from a RestrictionSet to the kernel's struct io_uring_restriction array.
// Private to the ring module (it includes the uapi header).
#pragma once

#include <vector>

#include "ring/restriction.h"
#include "sys/uapi_compat.h"

namespace rf {

// Encodes set.registered_rules(model), which includes the Linux 7.0+ register lock entry
// (RestrictionSet::needs_register_lock_entry). The self-check still verifies the lock.
std::vector<io_uring_restriction> encode_restrictions(const RestrictionSet& set, RegisterRestrictionModel model);

}  // namespace rf
