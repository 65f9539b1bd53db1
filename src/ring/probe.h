// What the running kernel can do for ringfence, found by trying it: `ringfence probe`.
#pragma once

#include <bitset>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ring/iopoll_probe.h"
#include "ring/restriction.h"

namespace rf {

struct FeatureStatus {
  bool supported = false;
  std::string detail;  // how it was established, or why it is missing
};

struct SqeOpcodeStatus {
  std::uint8_t op = 0;
  std::string name;  // ringfence's name, or "op <n>"
  bool supported = false;
};

struct MemlockStatus {
  std::optional<std::uint64_t> soft_bytes;  // nullopt: unlimited
  std::optional<std::uint64_t> hard_bytes;
  bool cap_ipc_lock = false;  // io_uring does not charge RLIMIT_MEMLOCK when set
};

// The opcode facts the policy linter needs.
struct KernelOpcodeSupport {
  std::bitset<256> sqe_ops;        // IO_URING_OP_SUPPORTED per opcode
  unsigned register_op_count = 0;  // register opcodes 0..n-1 are accepted in restrictions
  std::string kernel_release;
};

struct KernelCapabilities {
  std::string kernel_release;
  std::optional<int> io_uring_disabled;  // the sysctl; nullopt before Linux 6.6
  FeatureStatus io_uring;                // a ring can be created at all
  std::uint32_t features = 0;            // IORING_FEAT_* of a plain ring
  std::vector<SqeOpcodeStatus> sqe_opcodes;  // 0..last_op, from IORING_REGISTER_PROBE
  unsigned register_op_count = 0;
  FeatureStatus r_disabled;
  FeatureStatus sqpoll;
  FeatureStatus no_mmap;
  FeatureStatus no_sqarray;
  FeatureStatus attach_wq;
  FeatureStatus restrictions;
  RegisterRestrictionModel register_model = RegisterRestrictionModel::LockedByAnyRestriction;
  MemlockStatus memlock;
  std::optional<IopollStatus> iopoll;  // only when a target was given

  KernelOpcodeSupport opcode_support() const;
};

// Never fails: each part records what it found. `iopoll_target` adds the IOPOLL check.
KernelCapabilities probe_kernel(const std::optional<std::string>& iopoll_target = std::nullopt);

// Names of the IORING_FEAT_* bits set in `features` ("SINGLE_MMAP", ...; "bit<n>" if unknown).
std::vector<std::string> feature_names(std::uint32_t features);

// The opcode facts alone (one ring, cheaper than probe_kernel); cached per process.
const KernelOpcodeSupport& running_kernel_opcode_support();

}  // namespace rf
