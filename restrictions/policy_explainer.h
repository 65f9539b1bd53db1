// `ringfence policy explain`: what a policy lets the guest do and not do, in words, and the
// restriction table the kernel receives.
#pragma once

#include <string>

#include "restrictions/policy.h"
#include "ring/probe.h"
#include "ring/sqe_exposure.h"

namespace rf::policy {

// `kernel` null explains against ringfence's own opcode tables instead of the running kernel.
// `exposure` (passthrough policies): what this kernel did with the SQE fields no restriction
// filters (probe_sqe_exposure); null lists the fields without this kernel's answers.
std::string explain_policy(const Policy& policy, const KernelOpcodeSupport* kernel, RegisterRestrictionModel model,
                           const SqeExposure* exposure = nullptr);

}  // namespace rf::policy
