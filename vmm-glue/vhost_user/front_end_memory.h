// FrontEndMemory: guest RAM as a vhost-user front-end hands it over in SET_MEM_TABLE (one fd per
// region), mapped by the back-end and adopted into an immutable GuestMemory map, plus the table
// that turns the front-end's own virtual addresses (which SET_VRING_ADDR uses) into
// guest-physical ones.
//
// GUEST-CONTROLLED (well, front-end-controlled): the whole table. Checked before anything is
// mapped: the payload is exactly the header and `count` regions, 1..8 regions and exactly as
// many fds, every region non-empty and page-aligned (address, size, fd offset) with no sum
// passing 2^64, no two regions overlapping in guest-physical or in front-end address space,
// and each fd large enough for its region and sealed against shrinking: the back-end touches
// these pages from its own threads, and a file truncated under its mappings would kill it with
// SIGBUS. QEMU's memory-backend-memfd seals by default (seal=on).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "memory/guest_memory_builder.h"
#include "util/result.h"
#include "util/unique_fd.h"

namespace rf::vhost_user {

struct FrontEndRegion {
  GuestAddress gpa;
  std::uint64_t bytes = 0;
  std::uint64_t user_addr = 0;  // where the front-end maps it
};

class FrontEndMemory {
 public:
  // The refusal names what was wrong and with which region.
  static Result<FrontEndMemory, std::string> map(std::span<const std::byte> payload, std::vector<UniqueFd> fds);

  const GuestMemoryMap& memory() const { return memory_; }
  std::span<const FrontEndRegion> regions() const { return regions_; }
  // The guest-physical address of [user_addr, user_addr + bytes) if it lies inside one region.
  std::optional<GuestAddress> to_guest(std::uint64_t user_addr, std::uint64_t bytes) const;

 private:
  FrontEndMemory() = default;
  GuestMemoryMap memory_;
  std::vector<FrontEndRegion> regions_;  // sorted by gpa
};

}  // namespace rf::vhost_user
