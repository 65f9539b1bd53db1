// What `ringfence bench` measures on: the target it opens (a file, a block device, a new file it
// lays out, or a zram device it creates and fills), and what kind of target that is, which
// decides what a table measured on it can and cannot show.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "util/result.h"
#include "util/unique_fd.h"

namespace rf::cli {

struct Target {
  UniqueFd fd;
  std::uint64_t size = 0;
  std::string description;  // "PATH (block device, N MiB)"
  std::string kind;         // what the target can and cannot show (target_kind)
};

// Opens `path` with O_DIRECT (read-write when `writes`); an error names the problem and the fix.
Result<Target, std::string> open_target(const std::string& path, bool writes);

// Lays out a new file the way fio does: written in full, so reads hit real data.
Result<void, std::string> lay_out(const std::string& path, std::uint64_t size);

// The kind of the device `name` (a block device's kernel name: zram0, loop3, vda, nvme0n1) or of a
// file on it: CPU-bound (RAM behind it) or latency-bound (a disk), and what that means for a table.
std::string target_kind(const std::string& name, bool file_on_it);

// The block device's kernel name of a device number (a partition gives its disk); empty if unknown.
std::string block_device_name(dev_t device);

// A zram device made for the bench (`--target zram`): added through /sys/class/zram-control
// (loading the module when needed), sized, filled with random data (incompressible, so every
// read copies a whole page), and removed when this goes (waiting up to 5 s for the kernel to let
// go of it).
class ZramTarget {
 public:
  static Result<std::unique_ptr<ZramTarget>, std::string> create(std::uint64_t size);
  ~ZramTarget();
  ZramTarget(const ZramTarget&) = delete;
  ZramTarget& operator=(const ZramTarget&) = delete;
  const std::string& path() const { return path_; }

 private:
  explicit ZramTarget(int id);
  int id_;
  std::string path_;
};

}  // namespace rf::cli
