// WindowClaims: which ranges of one guest memory map are device windows, so that two devices are
// never given the same guest RAM for their descriptor and rings (the second would wipe the
// first's rings and write its descriptor over the first's).
//
// This is the one mutable thing a GuestMemory carries. It has its own lock and is touched only
// when a device is created or destroyed, never on the I/O path.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "memory/guest_address.h"
#include "util/result.h"

namespace rf {

class WindowClaims;

// One device's window, held for as long as the device may use it. Move-only; releasing it (its
// destructor) lets a later device claim the range again.
class WindowClaim {
 public:
  WindowClaim() = default;
  WindowClaim(WindowClaim&& other) noexcept;
  WindowClaim& operator=(WindowClaim&& other) noexcept;
  WindowClaim(const WindowClaim&) = delete;
  WindowClaim& operator=(const WindowClaim&) = delete;
  ~WindowClaim();

  explicit operator bool() const { return registry_ != nullptr; }
  // The range stays claimed after this object is gone: for a window whose kernel ring was never
  // seen released, which may still write it (DeviceStopReport::released).
  void keep_forever();

 private:
  friend class WindowClaims;
  WindowClaim(std::shared_ptr<WindowClaims> registry, std::uint64_t id) : registry_(std::move(registry)), id_(id) {}
  void release() noexcept;

  std::shared_ptr<WindowClaims> registry_;
  std::uint64_t id_ = 0;
};

class WindowClaims : public std::enable_shared_from_this<WindowClaims> {
 public:
  static std::shared_ptr<WindowClaims> create() { return std::shared_ptr<WindowClaims>(new WindowClaims()); }

  // Claims [base, base + bytes) (bytes > 0, not passing 2^64); refused, with the range it meets,
  // when it overlaps a live claim.
  Result<WindowClaim, std::string> claim(GuestAddress base, std::uint64_t bytes);
  // How many ranges are claimed (kept-forever ones included).
  std::size_t count() const;

 private:
  friend class WindowClaim;
  WindowClaims() = default;
  void release(std::uint64_t id) noexcept;

  struct Claimed {
    std::uint64_t id = 0;
    GuestAddress base;
    std::uint64_t bytes = 0;
  };
  mutable std::mutex mutex_;
  std::vector<Claimed> claimed_;
  std::uint64_t next_id_ = 1;
};

}  // namespace rf
