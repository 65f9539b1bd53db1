// `ringfence policy explain`: what a policy lets the guest do and not do, in words, and the
// restriction table the kernel receives.
#pragma once

#include <string>

#include "restrictions/policy.h"
#include "ring/probe.h"

namespace rf::policy {

// `kernel` null explains against ringfence's own opcode tables instead of the running kernel.
std::string explain_policy(const Policy& policy, const KernelOpcodeSupport* kernel,
                           RegisterRestrictionModel model);

}  // namespace rf::policy
