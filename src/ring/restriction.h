// RestrictionSet: what a ring may do once enabled, as a value. The policy compiler
// (restrictions/) produces one; the ring builder registers it with the kernel.
//
// It is a small sum type of rules, like the kernel's struct io_uring_restriction entries:
//   AllowSqeOp{op}        IORING_RESTRICTION_SQE_OP
//   AllowSqeFlags{mask}   IORING_RESTRICTION_SQE_FLAGS_ALLOWED
//   RequireSqeFlags{mask} IORING_RESTRICTION_SQE_FLAGS_REQUIRED
//   AllowRegisterOp{op}   IORING_RESTRICTION_REGISTER_OP
// Everything not allowed is denied: a denied SQE completes with -EACCES, a denied
// io_uring_register(2) call returns EACCES.
#pragma once

#include <bitset>
#include <cstdint>
#include <variant>
#include <vector>

#include "ring/opcodes.h"

namespace rf {

struct AllowSqeOp {
  SqeOpcode op;
  friend bool operator==(const AllowSqeOp&, const AllowSqeOp&) = default;
};
struct AllowSqeFlags {
  std::uint8_t flags;
  friend bool operator==(const AllowSqeFlags&, const AllowSqeFlags&) = default;
};
struct RequireSqeFlags {
  std::uint8_t flags;
  friend bool operator==(const RequireSqeFlags&, const RequireSqeFlags&) = default;
};
struct AllowRegisterOp {
  RegisterOpcode op;
  friend bool operator==(const AllowRegisterOp&, const AllowRegisterOp&) = default;
};

using RestrictionRule = std::variant<AllowSqeOp, AllowSqeFlags, RequireSqeFlags, AllowRegisterOp>;

// How the running kernel interprets a restriction set's register entries.
enum class RegisterRestrictionModel {
  // Linux 5.10 to 6.x: registering any restriction set locks every register opcode it does
  // not list.
  LockedByAnyRestriction,
  // Linux 7.0+: SQE and register restrictions are tracked separately; a set without
  // REGISTER_OP entries leaves register opcodes unrestricted.
  TrackedSeparately,
};

class RestrictionSet {
 public:
  // The empty set denies every SQE opcode, every flag and every register opcode.
  RestrictionSet() = default;

  RestrictionSet& allow(SqeOpcode op);
  RestrictionSet& allow(RegisterOpcode op);
  // As in the kernel, there is one allowed mask and one required mask; setting replaces.
  RestrictionSet& allow_flags(std::uint8_t flags);
  RestrictionSet& require_flags(std::uint8_t flags);

  bool allows(SqeOpcode op) const { return sqe_ops_.test(to_u8(op)); }
  bool allows(RegisterOpcode op) const { return register_ops_.test(to_u8(op)); }
  std::uint8_t allowed_flags() const { return allowed_flags_; }
  std::uint8_t required_flags() const { return required_flags_; }

  // The kernel's rule (io_check_restriction): every required flag is set, and no flag
  // outside allowed|required is set.
  bool permits_flags(std::uint8_t sqe_flags) const;

  std::size_t allowed_sqe_op_count() const { return sqe_ops_.count(); }
  std::size_t allowed_register_op_count() const { return register_ops_.count(); }

  // The rules in a canonical order: SQE ops ascending, allowed flags, required flags,
  // register ops ascending. Flag rules are always present, even when the mask is empty.
  std::vector<RestrictionRule> rules() const;

  // Under RegisterRestrictionModel::TrackedSeparately (Linux 7.0+), a set that allows no
  // register opcode would leave register calls unrestricted, so one REGISTER_OP entry for
  // REGISTER_ENABLE_RINGS is registered with it: that call is a no-op once the ring is enabled
  // (-EBADFD), and its presence makes the kernel lock every other register opcode.
  bool needs_register_lock_entry(RegisterRestrictionModel model) const;
  // The rules as registered with a kernel of `model`: rules(), plus that entry when needed.
  std::vector<RestrictionRule> registered_rules(RegisterRestrictionModel model) const;

  friend bool operator==(const RestrictionSet&, const RestrictionSet&) = default;

 private:
  std::bitset<256> sqe_ops_;
  std::bitset<256> register_ops_;
  std::uint8_t allowed_flags_ = 0;
  std::uint8_t required_flags_ = 0;
};

// The model for a kernel release string such as "6.18.44-fc-v669".
RegisterRestrictionModel register_restriction_model_for(const char* kernel_release);

}  // namespace rf
