#include "ring/self_check.h"

#include <array>
#include <cerrno>

#include <fmt/format.h>

#include "ring/ring.h"

namespace rf {

namespace {

RingError failed(std::string message) { return RingError{RingErrc::SelfCheck, 0, std::move(message)}; }

// Register opcodes that are harmless even if a broken kernel let them through after enable:
// PROBE with a null argument faults, ENABLE_RINGS and RESTRICTIONS refuse an enabled ring.
constexpr std::array kRegisterCandidates = {RegisterOpcode::RegisterProbe, RegisterOpcode::RegisterEnableRings,
                                            RegisterOpcode::RegisterRestrictions};

}  // namespace

Result<SelfCheckReport, RingError> verify_restrictions(Ring& ring, const RestrictionSet& set) {
  const auto start = std::chrono::steady_clock::now();
  SelfCheckReport report;

  // 1. A denied register call returns EACCES.
  const RegisterOpcode* reg = nullptr;
  for (const auto& candidate : kRegisterCandidates) {
    if (!set.allows(candidate)) {
      reg = &candidate;
      break;
    }
  }
  if (reg == nullptr) {
    return unexpected(failed(
        "self-check impossible: the restriction set allows REGISTER_PROBE, REGISTER_ENABLE_RINGS and "
        "REGISTER_RESTRICTIONS, so no harmless register call is left to prove the register lock"));
  }
  report.register_probe = *reg;
  report.register_result = ring.probe_register_opcode(to_u8(*reg));
  if (report.register_result != -EACCES) {
    return unexpected(failed(fmt::format(
        "self-check failed: after enable, {} returned {} instead of EACCES; this kernel does not enforce the "
        "register restrictions, so the ring is not handed out",
        register_opcode_label(*reg), report.register_result == 0 ? "success" : errno_label(-report.register_result))));
  }

  // 2. A denied SQE completes with -EACCES. NOP when the set denies it (it does nothing even
  // if it ran), otherwise the lowest denied opcode.
  std::optional<SqeOpcode> op;
  for (const auto& known : known_sqe_opcodes()) {
    if (!set.allows(static_cast<SqeOpcode>(known.value))) {
      op = static_cast<SqeOpcode>(known.value);
      break;
    }
  }
  if (!op) {
    return unexpected(failed("self-check impossible: the restriction set allows every SQE opcode ringfence knows"));
  }
  report.sqe_probe = *op;
  Sqe probe;
  probe.opcode = *op;
  // Set the required flags so that the opcode alone is what the kernel refuses. BUFFER_SELECT
  // is left out: the kernel rejects it for most opcodes (-EOPNOTSUPP) before restrictions.
  probe.flags = set.required_flags() & static_cast<std::uint8_t>(~sqe_flag::kBufferSelect);
  probe.user_data = kSelfCheckUserData;
  auto cqe = ring.submit_and_wait(probe, std::chrono::seconds(5));
  if (!cqe) {
    auto error = std::move(cqe).error();
    error.code = RingErrc::SelfCheck;
    error.message = "self-check failed: the probe SQE did not complete: " + error.message;
    return unexpected(std::move(error));
  }
  report.sqe_result = cqe->res;
  if (cqe->user_data != kSelfCheckUserData || cqe->res != -EACCES) {
    return unexpected(failed(fmt::format(
        "self-check failed: the denied {} SQE completed with {} (user_data {:#x}) instead of -EACCES; the kernel "
        "does not enforce the SQE restrictions, so the ring is not handed out",
        sqe_opcode_label(*op), cqe->res >= 0 ? fmt::format("{}", cqe->res) : errno_label(-cqe->res), cqe->user_data)));
  }
  report.duration = std::chrono::steady_clock::now() - start;
  return report;
}

}  // namespace rf
