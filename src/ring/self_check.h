// The self-check every restricted ring passes after IORING_REGISTER_ENABLE_RINGS and before
// anyone else gets it: proof, on this kernel, that the restrictions are in force.
//   1. a register opcode the set denies returns EACCES;
//   2. an SQE whose opcode the set denies completes with -EACCES.
#pragma once

#include <chrono>

#include "ring/opcodes.h"
#include "ring/restriction.h"
#include "ring/ring_error.h"

namespace rf {

class Ring;

// user_data of the self-check's probe SQE.
inline constexpr std::uint64_t kSelfCheckUserData = 0x5246'5345'4c46'4348ULL;  // "RFSELFCH"

struct SelfCheckReport {
  RegisterOpcode register_probe = RegisterOpcode::RegisterProbe;
  int register_result = 0;  // -EACCES when it passed
  SqeOpcode sqe_probe = SqeOpcode::Nop;
  int sqe_result = 0;  // -EACCES when it passed
  std::chrono::nanoseconds duration{0};
};

// Runs both checks on `ring`, which must have nothing in flight. A failure is a
// RingErrc::SelfCheck error that says which check failed and what came back.
Result<SelfCheckReport, RingError> verify_restrictions(Ring& ring, const RestrictionSet& set);

}  // namespace rf
