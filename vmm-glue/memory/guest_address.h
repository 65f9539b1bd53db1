// GuestAddress: a guest-physical address. Its own type so that a GPA is never mixed up with a
// host pointer, and with no raw arithmetic: moving an address is checked and can fail
// (checked_add, checked_offset_from). Where construction already proved a move stays in range,
// the unchecked forms say so at the call site, and assert it in debug builds (vm-memory's
// `unchecked_add`).
#pragma once

#include <cassert>
#include <compare>
#include <cstdint>
#include <optional>

#include "util/checked_math.h"

namespace rf {

class GuestAddress {
 public:
  constexpr GuestAddress() = default;
  constexpr explicit GuestAddress(std::uint64_t value) : value_(value) {}

  constexpr std::uint64_t value() const { return value_; }
  // The address `bytes` further on; nullopt if that passes 2^64.
  constexpr std::optional<GuestAddress> checked_add(std::uint64_t bytes) const {
    const auto moved = rf::checked_add(value_, bytes);
    if (!moved) return std::nullopt;
    return GuestAddress(*moved);
  }
  // How far `this` lies past `base`; nullopt if it lies before it.
  constexpr std::optional<std::uint64_t> checked_offset_from(GuestAddress base) const {
    if (value_ < base.value_) return std::nullopt;
    return value_ - base.value_;
  }
  // For a move the caller has proved stays below 2^64 (the end of a validated region, an offset
  // inside one): the caller's comment names the proof.
  constexpr GuestAddress unchecked_add(std::uint64_t bytes) const {
    assert(rf::checked_add(value_, bytes).has_value() && "GuestAddress::unchecked_add passed 2^64");
    return GuestAddress(value_ + bytes);
  }
  // For an address the caller has proved lies at or past `base` (a binary search found it there).
  constexpr std::uint64_t unchecked_offset_from(GuestAddress base) const {
    assert(value_ >= base.value_ && "GuestAddress::unchecked_offset_from: the address lies before base");
    return value_ - base.value_;
  }

  friend constexpr auto operator<=>(GuestAddress, GuestAddress) = default;

 private:
  std::uint64_t value_ = 0;
};

}  // namespace rf
