// Overflow-checked arithmetic for sizes, offsets and addresses. Every computation on a value
// that came from outside (a policy, an option, a guest) goes through these.
#pragma once

#include <cstdint>
#include <optional>
#include <type_traits>

namespace rf {

template <typename T>
  requires std::is_unsigned_v<T>
constexpr std::optional<T> checked_add(T a, T b) {
  T out{};
  if (__builtin_add_overflow(a, b, &out)) return std::nullopt;
  return out;
}

template <typename T>
  requires std::is_unsigned_v<T>
constexpr std::optional<T> checked_mul(T a, T b) {
  T out{};
  if (__builtin_mul_overflow(a, b, &out)) return std::nullopt;
  return out;
}

// Rounds `value` up to a multiple of `alignment` (a power of two); nullopt on overflow.
template <typename T>
  requires std::is_unsigned_v<T>
constexpr std::optional<T> checked_align_up(T value, T alignment) {
  const auto bumped = checked_add<T>(value, alignment - 1);
  if (!bumped) return std::nullopt;
  return static_cast<T>(*bumped & ~(alignment - 1));
}

constexpr bool is_power_of_two(std::uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

}  // namespace rf
