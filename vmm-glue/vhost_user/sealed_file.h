// A file a front-end hands over for the back-end to map and write (the inflight region, the dirty
// log): checked before it is mapped, so that the mapping can never fault. The offset must be
// page-aligned, offset + size must not pass 2^63, the fd must be a regular file (a memfd) at least
// that long and sealed against shrinking (F_SEAL_SHRINK): a front-end that truncated it under the
// back-end's mapping would kill the back-end with SIGBUS.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "util/mmap_region.h"
#include "util/result.h"
#include "util/unique_fd.h"

namespace rf::vhost_user {

// `what` names the message in the refusal ("SET_LOG_BASE").
Result<MmapRegion, std::string> map_sealed_file(const UniqueFd& fd, std::uint64_t offset, std::uint64_t bytes,
                                                std::string_view what);

}  // namespace rf::vhost_user
