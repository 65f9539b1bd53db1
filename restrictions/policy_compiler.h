// Turns a policy into the RestrictionSet the ring builder registers.
#pragma once

#include "restrictions/policy.h"
#include "ring/restriction.h"

namespace rf::policy {

RestrictionSet compile_policy(const Policy& policy);

}  // namespace rf::policy
