// The vhost-user wire protocol, as QEMU's docs/interop/vhost-user.rst specifies it: the message
// header, the request codes and the payload layouts the block back-end uses. Little-endian, like
// the hosts it runs on.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace rf::vhost_user {

struct MessageHeader {
  std::uint32_t request;
  std::uint32_t flags;
  std::uint32_t size;  // payload bytes that follow
};
static_assert(sizeof(MessageHeader) == 12);

inline constexpr std::uint32_t kVersion = 0x1;         // flags bits 0-1
inline constexpr std::uint32_t kVersionMask = 0x3;
inline constexpr std::uint32_t kFlagReply = 1u << 2;
inline constexpr std::uint32_t kFlagNeedReply = 1u << 3;

// Front-end requests (the ones this back-end knows by name).
enum Request : std::uint32_t {
  kGetFeatures = 1,
  kSetFeatures = 2,
  kSetOwner = 3,
  kResetOwner = 4,
  kSetMemTable = 5,
  kSetLogBase = 6,
  kSetLogFd = 7,
  kSetVringNum = 8,
  kSetVringAddr = 9,
  kSetVringBase = 10,
  kGetVringBase = 11,
  kSetVringKick = 12,
  kSetVringCall = 13,
  kSetVringErr = 14,
  kGetProtocolFeatures = 15,
  kSetProtocolFeatures = 16,
  kGetQueueNum = 17,
  kSetVringEnable = 18,
  kGetConfig = 24,
  kSetConfig = 25,
  kGetInflightFd = 31,
  kSetInflightFd = 32,
  kResetDevice = 34,
  kGetMaxMemSlots = 36,
};
std::string_view request_name(std::uint32_t request);

// VHOST_USER_F_PROTOCOL_FEATURES, in the virtio feature word.
inline constexpr unsigned kFeatureProtocolFeatures = 30;
// VHOST_F_LOG_ALL: the back-end logs the guest pages it writes (live migration).
inline constexpr unsigned kFeatureLogAll = 26;

// Protocol feature bits.
inline constexpr unsigned kProtocolMultiQueue = 0;
inline constexpr unsigned kProtocolLogShmfd = 1;
inline constexpr unsigned kProtocolReplyAck = 3;
inline constexpr unsigned kProtocolConfig = 9;
inline constexpr unsigned kProtocolInflightShmfd = 12;
inline constexpr unsigned kProtocolResetDevice = 13;

// At most this many fds ride one message, and so at most this many memory regions
// (VHOST_MEMORY_BASELINE_NREGIONS, without CONFIGURE_MEM_SLOTS).
inline constexpr std::size_t kMaxFds = 8;
inline constexpr std::size_t kMaxMemoryRegions = 8;

// SET_VRING_NUM, SET_VRING_BASE, GET_VRING_BASE, SET_VRING_ENABLE.
struct VringState {
  std::uint32_t index;
  std::uint32_t num;
};
static_assert(sizeof(VringState) == 8);

// SET_VRING_ADDR: addresses in the front-end's own virtual address space.
struct VringAddr {
  std::uint32_t index;
  std::uint32_t flags;
  std::uint64_t desc_user_addr;
  std::uint64_t used_user_addr;
  std::uint64_t avail_user_addr;
  std::uint64_t log_guest_addr;
};
static_assert(sizeof(VringAddr) == 40);

// SET_VRING_ADDR's flags: log the used ring's writes at log_guest_addr.
inline constexpr std::uint32_t kVringFlagLog = 1;

// SET_LOG_BASE (with LOG_SHMFD: the log's fd rides along).
struct LogBase {
  std::uint64_t mmap_size;
  std::uint64_t mmap_offset;
};
static_assert(sizeof(LogBase) == 16);

// SET_VRING_KICK / CALL / ERR: the queue index in bits 0-7; bit 8 set means no fd rides along.
inline constexpr std::uint64_t kVringIndexMask = 0xff;
inline constexpr std::uint64_t kVringNoFd = 1u << 8;

// SET_MEM_TABLE: this header, then `count` regions; one fd per region.
struct MemoryTableHeader {
  std::uint32_t count;
  std::uint32_t padding;
};
struct MemoryRegion {
  std::uint64_t guest_phys_addr;
  std::uint64_t memory_size;
  std::uint64_t userspace_addr;  // where the front-end maps it: ring addresses are in these terms
  std::uint64_t mmap_offset;     // where the region starts in its fd
};
static_assert(sizeof(MemoryRegion) == 32);

// GET_CONFIG / SET_CONFIG: this header, then `size` bytes of configuration space.
struct ConfigHeader {
  std::uint32_t offset;
  std::uint32_t size;
  std::uint32_t flags;
};
static_assert(sizeof(ConfigHeader) == 12);
inline constexpr std::uint32_t kMaxConfigBytes = 256;  // VHOST_USER_MAX_CONFIG_SIZE

// The largest payload any request this back-end accepts can carry: a full configuration space
// (a full memory table, 264 bytes, is smaller).
inline constexpr std::uint32_t kMaxPayload = sizeof(ConfigHeader) + kMaxConfigBytes;
static_assert(kMaxPayload >= sizeof(MemoryTableHeader) + kMaxMemoryRegions * sizeof(MemoryRegion));

}  // namespace rf::vhost_user
