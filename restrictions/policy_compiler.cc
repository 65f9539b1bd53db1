#include "restrictions/policy_compiler.h"

namespace rf::policy {

RestrictionSet compile_policy(const Policy& policy) {
  RestrictionSet set;
  for (const Entry& e : policy.sqe_opcodes) set.allow(static_cast<SqeOpcode>(e.value));
  for (const Entry& e : policy.register_opcodes) set.allow(static_cast<RegisterOpcode>(e.value));
  std::uint8_t required = 0;
  for (const Entry& e : policy.required_flags) required |= e.value;
  std::uint8_t allowed = 0;
  for (const Entry& e : policy.allowed_flags) allowed |= e.value;
  set.require_flags(required).allow_flags(allowed);
  return set;
}

}  // namespace rf::policy
