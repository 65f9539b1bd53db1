#include "disk/loop_device.h"

#include <fcntl.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <thread>

#include <fmt/format.h>

namespace rf {

namespace {

DiskError loop_error(int err, std::string what) {
  return DiskError{DiskErrc::LoopDevice, err,
                   fmt::format("{}: {} (a regular image file is attached to a loop device so that the block layer "
                               "bounds guest offsets; use a block device, or opt out of the bound explicitly)",
                               what, std::strerror(err))};
}

}  // namespace

Result<LoopAttachment, DiskError> attach_loop_device(int image_fd, bool read_only, bool direct_io, int open_flags) {
  UniqueFd control(::open("/dev/loop-control", O_RDWR | O_CLOEXEC));
  if (!control) return unexpected(loop_error(errno, "opening /dev/loop-control"));

  // Another process can take the free device between GET_FREE and CONFIGURE (EBUSY): retry.
  constexpr int kAttempts = 16;
  int last_errno = EBUSY;
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    const int number = ::ioctl(control.get(), LOOP_CTL_GET_FREE);
    if (number < 0) return unexpected(loop_error(errno, "finding a free loop device (LOOP_CTL_GET_FREE)"));
    std::string path = fmt::format("/dev/loop{}", number);
    UniqueFd device(::open(path.c_str(), open_flags | O_CLOEXEC));
    if (!device) return unexpected(loop_error(errno, "opening " + path));

    loop_config config{};
    config.fd = static_cast<std::uint32_t>(image_fd);
    std::uint32_t flags = LO_FLAGS_AUTOCLEAR;
    if (read_only) flags |= LO_FLAGS_READ_ONLY;
    if (direct_io) flags |= LO_FLAGS_DIRECT_IO;
    config.info.lo_flags = flags;
    if (::ioctl(device.get(), LOOP_CONFIGURE, &config) != 0) {
      last_errno = errno;
      if (last_errno == EBUSY) continue;
      return unexpected(loop_error(last_errno, "attaching the image to " + path + " (LOOP_CONFIGURE)"));
    }
    // The kernel quietly drops LO_FLAGS_DIRECT_IO when the image's file system cannot do it.
    loop_info64 status{};
    const bool dio = ::ioctl(device.get(), LOOP_GET_STATUS64, &status) == 0 &&
                     (status.lo_flags & LO_FLAGS_DIRECT_IO) != 0;
    return LoopAttachment{std::move(device), std::move(path), dio};
  }
  return unexpected(loop_error(last_errno, fmt::format("every free loop device was taken by someone else ({} tries)", kAttempts)));
}

bool loop_device_attached(const std::string& device_path) {
  const auto name = std::filesystem::path(device_path).filename().string();
  std::error_code ec;
  return std::filesystem::exists("/sys/block/" + name + "/loop/backing_file", ec);
}

bool wait_for_loop_detach(const std::string& device_path, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (loop_device_attached(device_path)) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

}  // namespace rf
