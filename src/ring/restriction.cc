#include "ring/restriction.h"

#include <cstdio>

namespace rf {

RestrictionSet& RestrictionSet::allow(SqeOpcode op) {
  sqe_ops_.set(to_u8(op));
  return *this;
}

RestrictionSet& RestrictionSet::allow(RegisterOpcode op) {
  register_ops_.set(to_u8(op));
  return *this;
}

RestrictionSet& RestrictionSet::allow_flags(std::uint8_t flags) {
  allowed_flags_ = flags;
  return *this;
}

RestrictionSet& RestrictionSet::require_flags(std::uint8_t flags) {
  required_flags_ = flags;
  return *this;
}

bool RestrictionSet::permits_flags(std::uint8_t sqe_flags) const {
  if ((sqe_flags & required_flags_) != required_flags_) return false;
  return (sqe_flags & ~(allowed_flags_ | required_flags_)) == 0;
}

std::vector<RestrictionRule> RestrictionSet::rules() const {
  std::vector<RestrictionRule> out;
  for (unsigned op = 0; op < sqe_ops_.size(); ++op) {
    if (sqe_ops_.test(op)) out.emplace_back(AllowSqeOp{static_cast<SqeOpcode>(op)});
  }
  out.emplace_back(AllowSqeFlags{allowed_flags_});
  out.emplace_back(RequireSqeFlags{required_flags_});
  for (unsigned op = 0; op < register_ops_.size(); ++op) {
    if (register_ops_.test(op)) out.emplace_back(AllowRegisterOp{static_cast<RegisterOpcode>(op)});
  }
  return out;
}

bool RestrictionSet::needs_register_lock_entry(RegisterRestrictionModel model) const {
  return model == RegisterRestrictionModel::TrackedSeparately && register_ops_.none();
}

std::vector<RestrictionRule> RestrictionSet::registered_rules(RegisterRestrictionModel model) const {
  std::vector<RestrictionRule> out = rules();
  if (needs_register_lock_entry(model)) out.emplace_back(AllowRegisterOp{RegisterOpcode::RegisterEnableRings});
  return out;
}

RegisterRestrictionModel register_restriction_model_for(const char* kernel_release) {
  unsigned major = 0;
  if (kernel_release == nullptr || std::sscanf(kernel_release, "%u", &major) != 1) {
    // Unknown: assume the newer model, which makes the encoder emit explicit register
    // entries; the self-check catches a ring whose register calls are not actually locked.
    return RegisterRestrictionModel::TrackedSeparately;
  }
  return major >= 7 ? RegisterRestrictionModel::TrackedSeparately : RegisterRestrictionModel::LockedByAnyRestriction;
}

}  // namespace rf
