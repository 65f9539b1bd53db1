#include "ring/registered_buffers.h"

#include <sys/resource.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>

#include <fmt/format.h>

#include "sys/syscalls.h"
#include "util/address.h"
#include "util/checked_math.h"

namespace rf {

namespace {

RingError plan_error(std::string message) { return RingError{RingErrc::RegisterBuffers, 0, std::move(message)}; }

std::string memlock_limit_text() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_MEMLOCK, &limit) != 0) return "unknown";
  if (limit.rlim_cur == RLIM_INFINITY) return "unlimited";
  return fmt::format("{} KiB", limit.rlim_cur / 1024);
}

}  // namespace

Result<BufferTable, RingError> BufferTable::plan(std::span<const BufferRegion> regions, std::size_t max_piece_bytes) {
  if (regions.empty()) return unexpected(plan_error("no buffer regions to register"));
  if (max_piece_bytes == 0 || max_piece_bytes > kMaxFixedBufferBytes) {
    return unexpected(plan_error(fmt::format("piece size {} is outside 1..{}", max_piece_bytes, kMaxFixedBufferBytes)));
  }
  BufferTable table;
  for (std::size_t r = 0; r < regions.size(); ++r) {
    const BufferRegion& region = regions[r];
    const std::uintptr_t base = address_of(region.host);
    if (region.host == nullptr || region.len == 0) {
      return unexpected(plan_error(fmt::format("buffer region {} is empty or has no address", r)));
    }
    if (!checked_add<std::uintptr_t>(base, region.len)) {
      return unexpected(plan_error(fmt::format("buffer region {} wraps around the address space", r)));
    }
    for (std::size_t offset = 0; offset < region.len; offset += max_piece_bytes) {
      if (table.pieces_.size() == kMaxFixedBuffers) {
        return unexpected(plan_error(fmt::format(
            "the regions need more than {} fixed buffers of at most {} bytes each: register less memory",
            kMaxFixedBuffers, max_piece_bytes)));
      }
      BufferPiece piece;
      piece.host_base = base + offset;
      piece.len = std::min(max_piece_bytes, region.len - offset);
      piece.region = r;
      piece.region_offset = offset;
      table.pieces_.push_back(piece);
    }
    table.total_bytes_ += region.len;
  }
  // Buffer indices follow the caller's order; lookups need address order.
  for (std::size_t i = 0; i < table.pieces_.size(); ++i) {
    table.pieces_[i].index = BufferIndex{static_cast<std::uint16_t>(i)};
  }
  std::sort(table.pieces_.begin(), table.pieces_.end(),
            [](const BufferPiece& a, const BufferPiece& b) { return a.host_base < b.host_base; });
  for (std::size_t i = 1; i < table.pieces_.size(); ++i) {
    const BufferPiece& prev = table.pieces_[i - 1];
    if (prev.host_base + prev.len > table.pieces_[i].host_base) {
      return unexpected(plan_error(fmt::format("buffer regions {} and {} overlap", prev.region, table.pieces_[i].region)));
    }
  }
  return table;
}

std::optional<BufferPiece> BufferTable::find(std::uintptr_t host, std::size_t len) const {
  if (len == 0) return std::nullopt;
  const auto end = checked_add<std::uintptr_t>(host, len);
  if (!end) return std::nullopt;
  // The last piece that starts at or before `host`.
  auto it = std::upper_bound(pieces_.begin(), pieces_.end(), host,
                             [](std::uintptr_t addr, const BufferPiece& p) { return addr < p.host_base; });
  if (it == pieces_.begin()) return std::nullopt;
  --it;
  // SAFETY (arithmetic): host_base + len cannot overflow; plan() checked every region's end.
  if (*end > it->host_base + it->len) return std::nullopt;
  return *it;
}

Result<BufferTable, RingError> plan_and_register_buffers(int ring_fd, std::span<const BufferRegion> regions) {
  auto table = BufferTable::plan(regions);
  if (!table) return table;
  RF_TRY_VOID(register_buffers(ring_fd, *table));
  return table;
}

Result<void, RingError> register_buffers(int ring_fd, const BufferTable& table) {
  std::vector<iovec> iovs(table.pieces().size());
  for (const BufferPiece& piece : table.pieces()) {
    // SAFETY: host_base is the address of caller memory that stays mapped (BufferRegion contract).
    iovs[piece.index.value] = iovec{reinterpret_cast<void*>(piece.host_base), piece.len};
  }
  const int rc = sys::io_uring_register(ring_fd, IORING_REGISTER_BUFFERS, iovs.data(), static_cast<unsigned>(iovs.size()));
  if (rc == 0) return {};
  const int err = -rc;
  if (err == ENOMEM && sys::has_cap_ipc_lock() == 0) {
    return unexpected(RingError{
        RingErrc::MemlockLimit, err,
        fmt::format("registering {} bytes of fixed buffers exceeds RLIMIT_MEMLOCK (currently {}); io_uring pins "
                    "registered buffers and charges them to that limit. Fix: raise the limit (`ulimit -l "
                    "unlimited`, `prlimit --memlock=unlimited --pid <vmm>`, or LimitMEMLOCK=infinity in the "
                    "systemd unit), or grant the VMM CAP_IPC_LOCK",
                    table.total_bytes(), memlock_limit_text())});
  }
  const RingErrc code = err == EACCES ? RingErrc::RegisterDenied : RingErrc::RegisterBuffers;
  return unexpected(RingError{code, err,
                              fmt::format("IORING_REGISTER_BUFFERS ({} buffers, {} bytes) failed: {}",
                                          iovs.size(), table.total_bytes(), errno_label(err))});
}

}  // namespace rf
