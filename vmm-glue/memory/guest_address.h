// GuestAddress: a guest-physical address. Its own type so that a GPA is never mixed up with a
// host pointer, and with no raw arithmetic: moving an address is checked and can fail.
#pragma once

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
  constexpr std::optional<GuestAddress> plus(std::uint64_t bytes) const {
    const auto moved = checked_add(value_, bytes);
    if (!moved) return std::nullopt;
    return GuestAddress(*moved);
  }
  // How far `this` lies past `base`; nullopt if it lies before it.
  constexpr std::optional<std::uint64_t> offset_from(GuestAddress base) const {
    if (value_ < base.value_) return std::nullopt;
    return value_ - base.value_;
  }

  friend constexpr auto operator<=>(GuestAddress, GuestAddress) = default;

 private:
  std::uint64_t value_ = 0;
};

}  // namespace rf
