#include "virtio/ringfence_attach.h"

#include <cstring>

namespace rf::virtio {

namespace {

std::byte* writable(const GuestMemory& memory, const ChainSegment& s, std::uint64_t bytes) {
  auto span = memory.translate(s.gpa, bytes, DeviceAccess::WritesGuest);
  return span ? span->host : nullptr;
}

}  // namespace

// GUEST-CONTROLLED: the chain and the request bytes; the request is copied once, here.
std::optional<RingfenceRequest> parse_ringfence_request(std::uint32_t type, std::span<const ChainSegment> chain,
                                                        const GuestMemory& memory) {
  RingfenceRequest r;
  r.type = type;
  // The header is the first readable descriptor, exactly 16 bytes; the status the last
  // writable one, exactly 1 byte. (These requests come only from ringfence-aware drivers,
  // which the ABI tells this layout.)
  if (chain.size() < 2 || chain.front().device_writes || chain.front().len != 16) return std::nullopt;
  const ChainSegment& last = chain.back();
  if (!last.device_writes || last.len != 1) return std::nullopt;
  r.status = writable(memory, last, 1);
  if (r.status == nullptr) return std::nullopt;
  if (type != kBlkRingfenceAttach) {
    if (chain.size() != 2) return std::nullopt;
    return r;
  }
  if (chain.size() != 4 || chain[1].device_writes || chain[1].len != sizeof(AttachRequest) || !chain[2].device_writes ||
      chain[2].len != sizeof(AttachReply)) {
    return std::nullopt;
  }
  auto request = memory.translate(chain[1].gpa, sizeof(AttachRequest), DeviceAccess::ReadsGuest);
  if (!request) return std::nullopt;
  std::memcpy(&r.attach, request->host, sizeof r.attach);
  r.reply = writable(memory, chain[2], sizeof(AttachReply));
  if (r.reply == nullptr) return std::nullopt;
  return r;
}

}  // namespace rf::virtio
