// What `ringfence fuzz` watches from the VMM side while a hostile guest runs, each with a
// check() that says what changed (nullopt: nothing did):
//   CanaryPages  pages of VMM memory outside guest RAM, one just below and one just above its
//                host mapping where the address space allows, and one elsewhere;
//   DecoyFile    a file the VMM holds open (O_RDWR) but never registers;
//   ShadowDisk   a copy of the disk: it may change only inside a WriteFootprint.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "disk/disk.h"
#include "fuzz/live/footprint.h"
#include "memory/guest_memory.h"
#include "util/mmap_region.h"
#include "util/result.h"
#include "util/unique_fd.h"

namespace rf::fuzz {

class CanaryPages {
 public:
  // `memory`: single-region guest RAM whose host mapping the adjacent canaries hug.
  static Result<CanaryPages, std::string> create(const GuestMemory& memory);
  std::uint64_t below() const;  // host addresses of each canary page
  std::uint64_t above() const;
  std::uint64_t elsewhere() const;
  std::optional<std::string> check() const;

 private:
  CanaryPages() = default;
  std::vector<MmapRegion> pages_;  // below, above, elsewhere
};

class DecoyFile {
 public:
  static Result<DecoyFile, std::string> create(const std::string& directory);
  int fd() const { return fd_.get(); }
  std::optional<std::string> check() const;

 private:
  DecoyFile() = default;
  UniqueFd fd_;
  std::vector<unsigned char> expected_;
};

class ShadowDisk {
 public:
  // Reads the whole disk (through its own descriptor) as the reference.
  static Result<ShadowDisk, std::string> create(const Disk& disk);
  // Reads the disk again; every sector that changed must lie inside `footprint`. The new
  // contents become the reference either way. `changed_bytes` reports how much changed.
  std::optional<std::string> check(const WriteFootprint& footprint, std::uint64_t& changed_bytes);
  // Adopts the disk's current contents without checking (after an episode that cannot be checked).
  Result<void, std::string> resync();

 private:
  ShadowDisk() = default;
  Result<void, std::string> read_all(MmapRegion& into) const;
  int fd_ = -1;  // borrowed from the Disk, which outlives this
  std::uint64_t bytes_ = 0;
  std::uint32_t sector_ = 512;
  MmapRegion shadow_;
  MmapRegion current_;
};

}  // namespace rf::fuzz
