#include "fuzz/live/watchers.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "util/address.h"

namespace rf::fuzz {

namespace {

constexpr unsigned char kCanaryByte = 0xc5;

std::string sys_error(std::string_view what) { return fmt::format("{}: {}", what, std::strerror(errno)); }

// A page at exactly `at` if nothing is mapped there (MAP_FIXED_NOREPLACE), else anywhere.
Result<MmapRegion, std::string> canary_page(std::uintptr_t at) {
  const std::size_t page = page_size();
  if (at != 0) {
    // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping; it fails instead.
    void* p = ::mmap(reinterpret_cast<void*>(at), page, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (p != MAP_FAILED && p == reinterpret_cast<void*>(at)) return MmapRegion::adopt(p, page);
    if (p != MAP_FAILED) ::munmap(p, page);  // an old kernel that took it as a hint
  }
  auto region = MmapRegion::map_anonymous(page);
  if (!region) return unexpected(region.error().message);
  return std::move(*region);
}

}  // namespace

Result<CanaryPages, std::string> CanaryPages::create(const GuestMemory& memory) {
  if (memory.regions().size() != 1) return unexpected(std::string("the canaries need guest RAM in one region"));
  const GuestRegion& ram = memory.regions().front();
  const std::uintptr_t start = address_of(ram.host);
  const std::size_t page = page_size();
  CanaryPages c;
  for (const std::uintptr_t at : {start - page, start + ram.bytes, std::uintptr_t{0}}) {
    auto p = canary_page(at);
    if (!p) return unexpected(std::move(p).error());
    std::memset(p->data(), kCanaryByte, page);
    c.pages_.push_back(std::move(*p));
  }
  return c;
}

std::uint64_t CanaryPages::below() const { return address_of(pages_[0].data()); }
std::uint64_t CanaryPages::above() const { return address_of(pages_[1].data()); }
std::uint64_t CanaryPages::elsewhere() const { return address_of(pages_[2].data()); }

std::optional<std::string> CanaryPages::check() const {
  static constexpr const char* kNames[] = {"below guest RAM", "above guest RAM", "elsewhere"};
  for (std::size_t i = 0; i < pages_.size(); ++i) {
    const auto* bytes = static_cast<const unsigned char*>(pages_[i].data());
    for (std::size_t b = 0; b < pages_[i].size(); ++b) {
      if (bytes[b] != kCanaryByte) {
        return fmt::format("the canary page {} ({:#x}) changed at byte {}: {:#04x}", kNames[i], address_of(pages_[i].data()), b,
                           bytes[b]);
      }
    }
  }
  return std::nullopt;
}

Result<DecoyFile, std::string> DecoyFile::create(const std::string& directory) {
  DecoyFile d;
  const std::string path = directory + "/decoy";
  d.fd_ = UniqueFd(::open(path.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600));
  if (!d.fd_) return unexpected(sys_error("creating the decoy file " + path));
  d.expected_.resize(64 * 1024);
  for (std::size_t i = 0; i < d.expected_.size(); ++i) d.expected_[i] = static_cast<unsigned char>(i * 131 + 7);
  if (::pwrite(d.fd_.get(), d.expected_.data(), d.expected_.size(), 0) != static_cast<ssize_t>(d.expected_.size())) {
    return unexpected(sys_error("writing the decoy file"));
  }
  return d;
}

std::optional<std::string> DecoyFile::check() const {
  struct stat st{};
  if (::fstat(fd_.get(), &st) != 0) return sys_error("fstat of the decoy file");
  if (static_cast<std::uint64_t>(st.st_size) != expected_.size()) {
    return fmt::format("the decoy file's size changed from {} to {} bytes", expected_.size(), st.st_size);
  }
  std::vector<unsigned char> now(expected_.size());
  if (::pread(fd_.get(), now.data(), now.size(), 0) != static_cast<ssize_t>(now.size())) return sys_error("reading the decoy file");
  for (std::size_t i = 0; i < now.size(); ++i) {
    if (now[i] != expected_[i]) return fmt::format("the decoy file changed at byte {}", i);
  }
  return std::nullopt;
}

Result<ShadowDisk, std::string> ShadowDisk::create(const Disk& disk) {
  ShadowDisk s;
  s.fd_ = disk.fd();
  s.bytes_ = disk.size_bytes();
  s.sector_ = disk.logical_block_size();
  auto shadow = MmapRegion::map_anonymous(s.bytes_);  // page-aligned, as O_DIRECT wants
  auto current = MmapRegion::map_anonymous(s.bytes_);
  if (!shadow || !current) return unexpected(std::string("no memory for the shadow disk"));
  s.shadow_ = std::move(*shadow);
  s.current_ = std::move(*current);
  RF_TRY_VOID(s.read_all(s.shadow_));
  return s;
}

Result<void, std::string> ShadowDisk::read_all(MmapRegion& into) const {
  std::uint64_t done = 0;
  while (done < bytes_) {
    const std::uint64_t chunk = std::min<std::uint64_t>(bytes_ - done, 1u << 20);
    const ssize_t got = ::pread(fd_, into.bytes() + done, chunk, static_cast<off_t>(done));
    if (got <= 0) return unexpected(sys_error(fmt::format("reading the disk at {}", done)));
    done += static_cast<std::uint64_t>(got);
  }
  return {};
}

std::optional<std::string> ShadowDisk::check(const WriteFootprint& footprint, std::uint64_t& changed_bytes) {
  changed_bytes = 0;
  if (auto r = read_all(current_); !r) return r.error();
  std::optional<std::string> violation;
  std::uint64_t outside = 0;
  for (std::uint64_t at = 0; at < bytes_; at += sector_) {
    if (std::memcmp(shadow_.bytes() + at, current_.bytes() + at, sector_) == 0) continue;
    changed_bytes += sector_;
    if (footprint.covers(at, sector_)) continue;
    if (++outside == 1) violation = fmt::format("disk bytes [{:#x}, {:#x}) changed where no accepted write pointed", at, at + sector_);
  }
  if (outside > 1) *violation += fmt::format(" (and {} more sectors)", outside - 1);
  std::swap(shadow_, current_);
  return violation;
}

Result<void, std::string> ShadowDisk::resync() { return read_all(shadow_); }

}  // namespace rf::fuzz
