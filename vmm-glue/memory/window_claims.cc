#include "memory/window_claims.h"

#include <algorithm>
#include <utility>

#include <fmt/format.h>

namespace rf {

WindowClaim::WindowClaim(WindowClaim&& other) noexcept
    : registry_(std::move(other.registry_)), id_(std::exchange(other.id_, 0)) {}

WindowClaim& WindowClaim::operator=(WindowClaim&& other) noexcept {
  if (this != &other) {
    release();
    registry_ = std::move(other.registry_);
    id_ = std::exchange(other.id_, 0);
  }
  return *this;
}

WindowClaim::~WindowClaim() { release(); }

void WindowClaim::keep_forever() {
  registry_.reset();
  id_ = 0;
}

void WindowClaim::release() noexcept {
  if (registry_) registry_->release(id_);
  registry_.reset();
  id_ = 0;
}

Result<WindowClaim, std::string> WindowClaims::claim(GuestAddress base, std::uint64_t bytes) {
  const auto end = base.checked_add(bytes);
  if (bytes == 0 || !end) return unexpected(fmt::format("the window {:#x}+{:#x} is empty or passes 2^64", base.value(), bytes));
  std::lock_guard lock(mutex_);
  for (const Claimed& c : claimed_) {
    // Both ranges passed the same check when claimed: their ends do not pass 2^64.
    if (base < c.base.unchecked_add(c.bytes) && c.base < *end) {
      return unexpected(fmt::format("the device window {:#x}+{:#x} overlaps the window {:#x}+{:#x} of another device on "
                                    "this guest memory: give each device a window of its own",
                                    base.value(), bytes, c.base.value(), c.bytes));
    }
  }
  const std::uint64_t id = next_id_++;
  claimed_.push_back(Claimed{id, base, bytes});
  return WindowClaim(shared_from_this(), id);
}

std::size_t WindowClaims::count() const {
  std::lock_guard lock(mutex_);
  return claimed_.size();
}

void WindowClaims::release(std::uint64_t id) noexcept {
  std::lock_guard lock(mutex_);
  std::erase_if(claimed_, [id](const Claimed& c) { return c.id == id; });
}

}  // namespace rf
