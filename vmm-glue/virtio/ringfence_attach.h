// The shared-ring attach over a virtio-blk queue (docs/abi.md, "Attaching over virtio-blk"): the
// vendor request types a ringfence-aware guest driver sends on a virtqueue it owns, and their
// payloads. An unmodified VMM passes them through untouched (vhost-user leaves the virtqueue to
// the guest and the back-end), where a new feature bit would not survive QEMU 7.2.
//
//   ATTACH  header | AttachRequest (device-readable) | AttachReply (device-writable) | status
//   NOTIFY  header | status: held by the device until it has a completion to signal
//   DETACH  header | status
//
// GUEST-CONTROLLED: all of it; parse_ringfence_request validates the layout and copies the
// request once.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include "memory/guest_memory.h"
#include "virtio/split_queue.h"

namespace rf::virtio {

inline constexpr std::uint32_t kBlkRingfenceAttach = 0x52460001;  // 'RF' 0x0001
inline constexpr std::uint32_t kBlkRingfenceNotify = 0x52460002;
inline constexpr std::uint32_t kBlkRingfenceDetach = 0x52460003;
constexpr bool is_ringfence_request(std::uint32_t type) {
  return type == kBlkRingfenceAttach || type == kBlkRingfenceNotify || type == kBlkRingfenceDetach;
}

inline constexpr std::uint32_t kAttachMagic = 0x54414652;  // "RFAT" in memory order
inline constexpr std::uint16_t kAttachMajor = 1;
inline constexpr std::uint16_t kAttachMinor = 0;

struct AttachRequest {
  std::uint32_t magic;
  std::uint16_t major;
  std::uint16_t minor;
  std::uint64_t window_gpa;    // page-aligned guest RAM the guest set aside for the device
  std::uint64_t window_bytes;
  std::uint32_t queue_depth;   // the ring's SQ entries: a power of two
  std::uint32_t flags;         // 0
};
static_assert(sizeof(AttachRequest) == 32);

enum class AttachMode : std::uint32_t { Passthrough = 1, Mediated = 2 };  // as abi::Mode

struct AttachReply {
  std::uint32_t result;  // 0, or a positive errno
  std::uint16_t major;   // the version the device speaks
  std::uint16_t minor;
  std::uint32_t mode;    // AttachMode
  std::uint32_t reserved;
  std::uint64_t descriptor_gpa;  // the ring descriptor: the window's start
  std::uint64_t needed_bytes;    // what the device needs of the window (with ENOSPC: how much)
};
static_assert(sizeof(AttachReply) == 32);

// A ringfence request taken from a chain: where its reply and status go.
struct RingfenceRequest {
  std::uint32_t type = 0;
  AttachRequest attach{};          // ATTACH only: the private copy
  std::byte* reply = nullptr;      // ATTACH only: 32 writable bytes in one region
  std::byte* status = nullptr;
};

// Checks the layout above (the reply must lie in one descriptor, inside writable guest RAM) and
// copies the request. nullopt: not a well-formed ringfence request (the caller fails it like
// any malformed request).
std::optional<RingfenceRequest> parse_ringfence_request(std::uint32_t type, std::span<const ChainSegment> chain,
                                                        const GuestMemory& memory);

}  // namespace rf::virtio
