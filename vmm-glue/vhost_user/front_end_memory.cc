#include "vhost_user/front_end_memory.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "util/checked_math.h"
#include "util/mmap_region.h"
#include "vhost_user/vhost_user_protocol.h"

namespace rf::vhost_user {

namespace {

struct Entry {
  MemoryRegion wire;
  UniqueFd fd;
};

// One region's own checks: sizes, alignment, sums, and the fd behind it.
Result<void, std::string> check_region(std::size_t i, const Entry& e) {
  const MemoryRegion& r = e.wire;
  const std::uint64_t page = page_size();
  if (r.memory_size == 0) return unexpected(fmt::format("region {} is empty", i));
  if (r.guest_phys_addr % page != 0 || r.memory_size % page != 0 || r.mmap_offset % page != 0) {
    return unexpected(fmt::format("region {} (guest {:#x}+{:#x}, fd offset {:#x}) is not page-aligned", i, r.guest_phys_addr,
                                  r.memory_size, r.mmap_offset));
  }
  const auto gpa_end = checked_add(r.guest_phys_addr, r.memory_size);
  const auto user_end = checked_add(r.userspace_addr, r.memory_size);
  const auto file_end = checked_add(r.mmap_offset, r.memory_size);
  if (!gpa_end || !user_end || !file_end || *file_end > static_cast<std::uint64_t>(INT64_MAX)) {
    return unexpected(fmt::format("region {}: guest {:#x}, front-end address {:#x} or fd offset {:#x} plus size {:#x} passes 2^64",
                                  i, r.guest_phys_addr, r.userspace_addr, r.mmap_offset, r.memory_size));
  }
  struct stat st{};
  if (::fstat(e.fd.get(), &st) != 0) return unexpected(fmt::format("region {}: fstat on its fd: {}", i, std::strerror(errno)));
  if (!S_ISREG(st.st_mode)) return unexpected(fmt::format("region {}'s fd is not a memory file (memfd, or a file on tmpfs or hugetlbfs)", i));
  if (static_cast<std::uint64_t>(st.st_size) < *file_end) {
    return unexpected(fmt::format("region {} needs {:#x} bytes of its fd but the file has {:#x}", i, *file_end,
                                  static_cast<std::uint64_t>(st.st_size)));
  }
  const int seals = ::fcntl(e.fd.get(), F_GET_SEALS);
  if (seals < 0 || (seals & F_SEAL_SHRINK) == 0) {
    return unexpected(fmt::format("region {}'s fd is not sealed against shrinking (F_SEAL_SHRINK): a front-end that truncated "
                                  "it would kill the back-end with SIGBUS. Give guest RAM from a sealed memfd (QEMU: "
                                  "-object memory-backend-memfd,share=on, whose seal=on is the default)", i));
  }
  return {};
}

bool overlaps(std::uint64_t a, std::uint64_t a_bytes, std::uint64_t b, std::uint64_t b_bytes) {
  // Both ranges were checked not to pass 2^64.
  return a < b + b_bytes && b < a + a_bytes;
}

}  // namespace

Result<FrontEndMemory, std::string> FrontEndMemory::map(std::span<const std::byte> payload, std::vector<UniqueFd> fds) {
  MemoryTableHeader header{};
  if (payload.size() < sizeof header) {
    return unexpected(fmt::format("SET_MEM_TABLE's payload is {} bytes, shorter than its 8-byte header", payload.size()));
  }
  std::memcpy(&header, payload.data(), sizeof header);
  if (header.count == 0 || header.count > kMaxMemoryRegions) {
    return unexpected(fmt::format("SET_MEM_TABLE lists {} regions; 1 to {} are accepted", header.count, kMaxMemoryRegions));
  }
  const std::size_t expected = sizeof header + std::size_t{header.count} * sizeof(MemoryRegion);
  if (payload.size() != expected) {
    return unexpected(fmt::format("SET_MEM_TABLE lists {} regions in {} bytes; that takes exactly {}", header.count,
                                  payload.size(), expected));
  }
  if (fds.size() != header.count) {
    return unexpected(fmt::format("SET_MEM_TABLE lists {} regions but carries {} fds (one per region)", header.count, fds.size()));
  }
  std::vector<Entry> entries(header.count);
  for (std::size_t i = 0; i < header.count; ++i) {
    std::memcpy(&entries[i].wire, payload.data() + sizeof header + i * sizeof(MemoryRegion), sizeof(MemoryRegion));
    entries[i].fd = std::move(fds[i]);
    RF_TRY_VOID(check_region(i, entries[i]));
  }
  for (std::size_t i = 0; i < entries.size(); ++i) {
    for (std::size_t j = i + 1; j < entries.size(); ++j) {
      const MemoryRegion& a = entries[i].wire;
      const MemoryRegion& b = entries[j].wire;
      if (overlaps(a.guest_phys_addr, a.memory_size, b.guest_phys_addr, b.memory_size)) {
        return unexpected(fmt::format("regions {} and {} overlap in guest-physical memory ({:#x}+{:#x} and {:#x}+{:#x})", i, j,
                                      a.guest_phys_addr, a.memory_size, b.guest_phys_addr, b.memory_size));
      }
      if (overlaps(a.userspace_addr, a.memory_size, b.userspace_addr, b.memory_size)) {
        return unexpected(fmt::format("regions {} and {} overlap in the front-end's address space ({:#x}+{:#x} and {:#x}+{:#x})",
                                      i, j, a.userspace_addr, a.memory_size, b.userspace_addr, b.memory_size));
      }
    }
  }
  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return a.wire.guest_phys_addr < b.wire.guest_phys_addr; });

  FrontEndMemory out;
  std::vector<RegionLayout> layout;
  std::vector<MmapRegion> mappings;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const MemoryRegion& r = entries[i].wire;
    auto mapping = MmapRegion::map_fd(entries[i].fd.get(), r.mmap_offset, static_cast<std::size_t>(r.memory_size),
                                      PROT_READ | PROT_WRITE, MAP_SHARED);
    if (!mapping) return unexpected(fmt::format("mapping region at guest {:#x}: {}", r.guest_phys_addr, mapping.error().message));
    layout.push_back(RegionLayout{GuestAddress{r.guest_phys_addr}, r.memory_size, false});
    mappings.push_back(std::move(*mapping));
    out.regions_.push_back(FrontEndRegion{GuestAddress{r.guest_phys_addr}, r.memory_size, r.userspace_addr});
  }
  // The fds may close now: the mappings keep the memory.
  auto map = GuestMemoryBuilder::adopt(layout, std::move(mappings));
  if (!map) return unexpected(fmt::format("guest memory: {}", map.error().message));
  out.memory_ = std::move(*map);
  return out;
}

std::optional<GuestAddress> FrontEndMemory::to_guest(std::uint64_t user_addr, std::uint64_t bytes) const {
  const auto end = checked_add(user_addr, bytes);
  if (!end) return std::nullopt;
  for (const FrontEndRegion& r : regions_) {
    // map() checked that user_addr + bytes and gpa + bytes of every region stay below 2^64.
    if (user_addr >= r.user_addr && *end <= r.user_addr + r.bytes) return r.gpa.unchecked_add(user_addr - r.user_addr);
  }
  return std::nullopt;
}

}  // namespace rf::vhost_user
