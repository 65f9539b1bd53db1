// Disk images for vmm-glue tests: a temporary directory that removes itself, and an image
// file of a given size opened as a Disk (through a loop device unless told otherwise).
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "disk/disk.h"
#include "util/temp_dir.h"

namespace rf::test {

// Creates `dir/name` with `bytes` zero bytes; returns its path ("" on failure).
inline std::string make_image(const rf::TempDir& dir, const std::string& name, std::uint64_t bytes) {
  const std::string path = dir.path() + "/" + name;
  const int fd = ::open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
  if (fd < 0) return "";
  const bool ok = ::ftruncate(fd, static_cast<off_t>(bytes)) == 0;
  ::close(fd);
  return ok ? path : "";
}

// Writes `dir/target` with `bytes` of real data (not sparse, so reads reach the disk), as the
// bench tests' target; returns its path ("" on failure).
inline std::string write_bench_target(const rf::TempDir& dir, std::uint64_t bytes = 8ull << 20) {
  const std::string path = dir.path() + "/target";
  const int fd = ::open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
  if (fd < 0) return "";
  const std::string chunk(1 << 20, 'x');
  bool ok = true;
  for (std::uint64_t done = 0; ok && done < bytes; done += chunk.size()) {
    ok = ::write(fd, chunk.data(), chunk.size()) == static_cast<ssize_t>(chunk.size());
  }
  ::close(fd);
  return ok ? path : "";
}

// False when the file system under `path` refuses O_DIRECT (EINVAL), as tmpfs does.
inline bool takes_direct_io(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
  if (fd >= 0) ::close(fd);
  return fd >= 0 || errno != EINVAL;
}

inline std::uint64_t file_size(const std::string& path) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  return ec ? 0 : size;
}

}  // namespace rf::test
