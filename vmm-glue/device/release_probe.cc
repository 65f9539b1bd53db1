#include "device/release_probe.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include <fmt/format.h>

namespace rf {

namespace {

DeviceError errno_error(const char* what) {
  const int err = errno;
  return DeviceError{DeviceErrc::System, err, fmt::format("{}: {}", what, std::strerror(err))};
}

// Whether some open file description holds a lock on the memfd that `checker` opens.
bool still_locked(int checker) {
  struct flock query {};
  query.l_type = F_WRLCK;  // conflicts with any read lock another description holds
  query.l_whence = SEEK_SET;
  if (::fcntl(checker, F_OFD_GETLK, &query) != 0) return true;  // cannot tell: not released
  return query.l_type != F_UNLCK;
}

}  // namespace

Result<ReleaseProbe, DeviceError> ReleaseProbe::create() {
  UniqueFd memfd(::memfd_create("ringfence-release-probe", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!memfd) return unexpected(errno_error("memfd for the ring's release probe"));
  // Empty for good: a guest that names it reads nothing and can make it no larger.
  if (::fcntl(memfd.get(), F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_WRITE | F_SEAL_SEAL) != 0) {
    return unexpected(errno_error("sealing the release probe"));
  }
  const std::string path = fmt::format("/proc/self/fd/{}", memfd.get());
  ReleaseProbe probe;
  // Read-only descriptions: a WRITE_FIXED on it gets -EBADF.
  probe.locked_.reset(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  probe.checker_.reset(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!probe.locked_ || !probe.checker_) return unexpected(errno_error("reopening the release probe"));
  struct flock lock {};
  lock.l_type = F_RDLCK;
  lock.l_whence = SEEK_SET;
  if (::fcntl(probe.locked_.get(), F_OFD_SETLK, &lock) != 0) return unexpected(errno_error("locking the release probe"));
  return probe;
}

bool ReleaseProbe::wait_released(std::chrono::milliseconds timeout) const {
  if (!checker_ || locked_) return false;  // never registered, or still ours
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  // The kernel frees a ring within milliseconds when nothing holds it up: look often at first.
  auto pause = std::chrono::microseconds(50);
  while (still_locked(checker_.get())) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::microseconds(2000));
  }
  return true;
}

}  // namespace rf
