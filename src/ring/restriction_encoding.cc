#include "ring/restriction_encoding.h"

#include <type_traits>

namespace rf {

namespace {
io_uring_restriction entry(std::uint16_t kind, std::uint8_t value) {
  io_uring_restriction r{};
  r.opcode = kind;
  r.sqe_op = value;  // sqe_op, register_op and sqe_flags share one byte (a union)
  return r;
}
}  // namespace

std::vector<io_uring_restriction> encode_restrictions(const RestrictionSet& set, RegisterRestrictionModel model) {
  std::vector<io_uring_restriction> out;
  for (const RestrictionRule& rule : set.registered_rules(model)) {
    std::visit(
        [&](const auto& r) {
          using T = std::decay_t<decltype(r)>;
          if constexpr (std::is_same_v<T, AllowSqeOp>) {
            out.push_back(entry(IORING_RESTRICTION_SQE_OP, to_u8(r.op)));
          } else if constexpr (std::is_same_v<T, AllowSqeFlags>) {
            out.push_back(entry(IORING_RESTRICTION_SQE_FLAGS_ALLOWED, r.flags));
          } else if constexpr (std::is_same_v<T, RequireSqeFlags>) {
            out.push_back(entry(IORING_RESTRICTION_SQE_FLAGS_REQUIRED, r.flags));
          } else {
            out.push_back(entry(IORING_RESTRICTION_REGISTER_OP, to_u8(r.op)));
          }
        },
        rule);
  }
  return out;
}

}  // namespace rf
