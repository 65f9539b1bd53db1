#include "vhost_user/sealed_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>

#include <fmt/format.h>

#include "util/checked_math.h"

namespace rf::vhost_user {

Result<MmapRegion, std::string> map_sealed_file(const UniqueFd& fd, std::uint64_t offset, std::uint64_t bytes,
                                                std::string_view what) {
  const long page = ::sysconf(_SC_PAGESIZE);
  const auto end = checked_add(offset, bytes);
  if (bytes == 0 || page <= 0 || offset % static_cast<std::uint64_t>(page) != 0 || !end ||
      *end > static_cast<std::uint64_t>(INT64_MAX)) {
    return unexpected(fmt::format("{} gives {:#x} bytes at offset {:#x}: it must be a non-empty range at a page-aligned "
                                  "offset", what, bytes, offset));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return unexpected(fmt::format("{}: fstat on its fd: {}", what, std::strerror(errno)));
  if (!S_ISREG(st.st_mode) || static_cast<std::uint64_t>(st.st_size) < *end) {
    return unexpected(fmt::format("{}'s fd is not a file of at least {} bytes (it has {})", what, *end,
                                  static_cast<std::uint64_t>(st.st_size)));
  }
  const int seals = ::fcntl(fd.get(), F_GET_SEALS);
  if (seals < 0 || (seals & F_SEAL_SHRINK) == 0) {
    return unexpected(fmt::format("{}'s fd is not sealed against shrinking (F_SEAL_SHRINK): a front-end that truncated it "
                                  "would kill the back-end with SIGBUS. Hand over a sealed memfd", what));
  }
  auto map = MmapRegion::map_fd(fd.get(), offset, bytes, PROT_READ | PROT_WRITE);
  if (!map) return unexpected(fmt::format("{}: mapping its fd: {}", what, map.error().message));
  return std::move(*map);
}

}  // namespace rf::vhost_user
