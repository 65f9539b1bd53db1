#include "util/unique_fd.h"

#include <unistd.h>

#include <cassert>
#include <cerrno>

namespace rf {

void UniqueFd::reset(int fd) noexcept {
  if (fd_ >= 0) {
    // Close errors cannot be acted on here (the descriptor is gone either way), but EBADF
    // means someone else closed a descriptor we owned: a double-close bug.
    // SAFETY: fd_ is a descriptor this object owns exclusively.
    const int rc = ::close(fd_);
    assert(!(rc != 0 && errno == EBADF) && "UniqueFd closed a descriptor it did not own");
    (void)rc;
  }
  fd_ = fd;
}

}  // namespace rf
