// Judges a parsed policy. Errors make `ringfence policy check` fail; warnings are printed.
//
// Rules (docs/policy-format.md has the full list with examples):
//   duplicate-entry          an opcode or flag listed twice in one list
//   flag-in-both-lists       a flag both required and allowed
//   contradictory-flags      flags that make every SQE fail (IO_DRAIN with CQE_SKIP_SUCCESS,
//                            BUFFER_SELECT with no opcode that can select a buffer)
//   unsupported-by-kernel    an opcode the running kernel does not support
//   unchecked-address        passthrough: an opcode that dereferences unchecked host addresses
//   creates-descriptors      passthrough: an opcode that creates or changes descriptors
//   outside-disks            passthrough: an opcode that reaches beyond the registered disks
//   resizes-disk             passthrough: an opcode that resizes the image at any offset
//   unknown-risk             passthrough: an opcode ringfence cannot classify
//   fixed-file-not-required  passthrough: FIXED_FILE is not required
//   (the four opcode rules and fixed-file-not-required are warnings in mediated mode, where the
//    mediator is the first guard and this ring is defence in depth; FALLOCATE is not flagged
//    there: the virtio-blk back-end submits it, validated, in size-keeping modes only)
//   async-flag               warning: ASYNC lets the submitter force io-wq worker threads
//   no-effect-register-op    warning: REGISTER_RESTRICTIONS / REGISTER_ENABLE_RINGS after enable
//   empty-opcode-list        warning: the ring can do nothing
#pragma once

#include <vector>

#include "restrictions/diagnostic.h"
#include "restrictions/policy.h"
#include "ring/probe.h"

namespace rf::policy {

// `kernel` null skips the checks against the running kernel.
std::vector<Diagnostic> lint_policy(const Policy& policy, const KernelOpcodeSupport* kernel);

}  // namespace rf::policy
