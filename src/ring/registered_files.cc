#include "ring/registered_files.h"

#include <fcntl.h>
#include <sys/resource.h>

#include <cerrno>

#include <fmt/format.h>

#include "sys/syscalls.h"

namespace rf {

Result<void, RingError> register_files(int ring_fd, std::span<const int> fds) {
  if (fds.empty()) {
    return unexpected(RingError{RingErrc::RegisterFiles, 0, "no files to register: pass at least one disk"});
  }
  if (fds.size() > kMaxFixedFiles) {
    return unexpected(RingError{RingErrc::RegisterFiles, 0,
                                fmt::format("{} files exceed the kernel's limit of {} fixed files", fds.size(),
                                            kMaxFixedFiles)});
  }
  rlimit nofile{};
  if (::getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur != RLIM_INFINITY && fds.size() > nofile.rlim_cur) {
    return unexpected(RingError{
        RingErrc::RegisterFiles, EMFILE,
        fmt::format("{} fixed files exceed RLIMIT_NOFILE ({}): raise it with `ulimit -n` or register fewer files",
                    fds.size(), nofile.rlim_cur)});
  }
  for (std::size_t i = 0; i < fds.size(); ++i) {
    if (fds[i] < 0 || ::fcntl(fds[i], F_GETFD) < 0) {
      return unexpected(RingError{RingErrc::RegisterFiles, EBADF,
                                  fmt::format("file {} (fd {}) is not an open descriptor", i, fds[i])});
    }
  }
  const int rc = sys::io_uring_register(ring_fd, IORING_REGISTER_FILES, fds.data(), static_cast<unsigned>(fds.size()));
  if (rc < 0) {
    const RingErrc code = rc == -EACCES ? RingErrc::RegisterDenied : RingErrc::RegisterFiles;
    return unexpected(RingError{code, -rc,
                                fmt::format("IORING_REGISTER_FILES ({} files) failed: {}", fds.size(),
                                            errno_label(-rc))});
  }
  return {};
}

}  // namespace rf
