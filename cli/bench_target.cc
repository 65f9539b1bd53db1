#include "cli/bench_target.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include <fmt/format.h>

#include "engine/child_program.h"
#include "host/block_device.h"
#include "util/mmap_region.h"

namespace rf::cli {

namespace {

constexpr const char* kZramControl = "/sys/class/zram-control";

std::optional<std::string> read_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  if (!std::getline(in, line)) return std::nullopt;
  return line;
}

bool write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  out.flush();
  return static_cast<bool>(out);
}

// Writes `size` bytes of `fill(chunk)` over `fd` in 1 MiB chunks, page-aligned (an O_DIRECT
// descriptor takes them), then fsyncs.
template <typename Fill>
Result<void, std::string> write_all(int fd, std::uint64_t size, Fill&& fill) {
  constexpr std::size_t kChunk = 1 << 20;
  auto chunk = MmapRegion::map_anonymous(kChunk);
  if (!chunk) return unexpected(chunk.error().message);
  for (std::uint64_t done = 0; done < size;) {
    fill(chunk->bytes(), kChunk);
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(kChunk, size - done));
    const ssize_t w = ::pwrite(fd, chunk->data(), n, static_cast<off_t>(done));
    if (w <= 0) return unexpected(std::string(w < 0 ? std::strerror(errno) : "a short write"));
    done += static_cast<std::uint64_t>(w);
  }
  if (::fsync(fd) != 0) return unexpected(std::string(std::strerror(errno)));
  return {};
}

}  // namespace

Result<void, std::string> lay_out(const std::string& path, std::uint64_t size) {
  UniqueFd fd(::open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600));
  if (!fd) return unexpected(fmt::format("cannot create {}: {}", path, std::strerror(errno)));
  auto written = write_all(fd.get(), size, [](std::byte* p, std::size_t n) { std::memset(p, 0xa5, n); });
  if (!written) return unexpected(fmt::format("cannot write {}: {}", path, written.error()));
  return {};
}

Result<Target, std::string> open_target(const std::string& path, bool writes) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) {
    return unexpected(fmt::format("target {}: {} (give an existing file or block device, zram, or omit --target for a "
                                  "temporary file)", path, std::strerror(errno)));
  }
  Target t;
  t.fd.reset(::open(path.c_str(), (writes ? O_RDWR : O_RDONLY) | O_DIRECT | O_CLOEXEC));
  if (!t.fd) {
    return unexpected(fmt::format("target {}: cannot be opened with O_DIRECT: {}{}", path, std::strerror(errno),
                                  errno == EINVAL ? " (tmpfs cannot do O_DIRECT: use --target zram, or a loop device "
                                                    "on it, see docs/benchmarks.md)" : ""));
  }
  if (S_ISBLK(st.st_mode)) {
    const auto geometry = block_device_geometry(t.fd.get());
    if (!geometry) return unexpected(fmt::format("target {}: cannot read its size: {}", path, geometry.error().message));
    t.size = geometry->size_bytes;
    t.description = fmt::format("{} (block device, {} MiB)", path, t.size >> 20);
    t.kind = target_kind(block_device_name(st.st_rdev), false);
  } else if (S_ISREG(st.st_mode)) {
    t.size = static_cast<std::uint64_t>(st.st_size);
    t.description = fmt::format("{} (file, {} MiB)", path, t.size >> 20);
    t.kind = target_kind(block_device_name(st.st_dev), true);
  } else {
    return unexpected(fmt::format("target {}: not a regular file or a block device", path));
  }
  return t;
}

std::string block_device_name(dev_t device) {
  const std::string sys = fmt::format("/sys/dev/block/{}:{}", major(device), minor(device));
  std::error_code ec;
  const auto resolved = std::filesystem::canonical(sys, ec);
  if (ec) return "";
  // A partition's directory sits inside its disk's.
  if (std::filesystem::exists(resolved / "partition", ec)) return resolved.parent_path().filename().string();
  return resolved.filename().string();
}

std::string target_kind(const std::string& name, bool file_on_it) {
  if (name.empty()) {
    return fmt::format("{} whose block device is not known: probably latency-bound (a disk), where a device's latency "
                       "hides most of the CPU a row adds (--target zram shows that)",
                       file_on_it ? "a file" : "a device");
  }
  const std::string what = file_on_it ? fmt::format("a file on {}", name) : name;
  if (name.starts_with("zram") || name.starts_with("ram") || name.starts_with("nullb")) {
    return fmt::format(
        "CPU-bound ({}: RAM behind it, no device latency). Every I/O's cost is CPU time, so the table shows what each "
        "row adds per I/O and how the rows share the CPUs{}. It cannot show a device's latency, IOPOLL, or how a row "
        "waits for a slow disk",
        what,
        name.starts_with("zram") ? "; zram takes no non-blocking I/O, so io_uring hands every I/O to an io-wq worker "
                                    "thread, which needs a CPU of its own (docs/benchmarks.md)" : "");
  }
  if (name.starts_with("loop")) {
    const auto backing = read_line(fmt::format("/sys/block/{}/loop/backing_file", name));
    return fmt::format("{} over {}: CPU-bound if that file is in RAM (tmpfs), latency-bound if it is on a disk", what,
                       backing.value_or("a file not known"));
  }
  return fmt::format(
      "latency-bound ({}: a disk). The device's latency and its run-to-run noise hide most of the CPU a row adds: the "
      "table shows how rows wait for a device, not what they cost per I/O (--target zram shows that)",
      what);
}

ZramTarget::ZramTarget(int id) : id_(id), path_(fmt::format("/dev/zram{}", id)) {}

ZramTarget::~ZramTarget() {
  // Reset first: a zram device still open refuses it (EBUSY). Our descriptors are closed by now,
  // but a closed io_uring instance drops its registered files from a kernel work item a moment
  // later, so the device stays busy for a few milliseconds after the last ring of the run.
  const std::string reset = fmt::format("/sys/block/zram{}/reset", id_);
  for (int attempt = 0; attempt < 500 && !write_text(reset, "1"); ++attempt) ::usleep(10'000);
  write_text(fmt::format("{}/hot_remove", kZramControl), std::to_string(id_));
}

Result<std::unique_ptr<ZramTarget>, std::string> ZramTarget::create(std::uint64_t size) {
  if (::geteuid() != 0) {
    return unexpected(std::string("--target zram needs root: it creates a zram device through /sys/class/zram-control "
                                  "(run as root, or give --target a file or block device)"));
  }
  if (::access(kZramControl, F_OK) != 0) {
    auto loaded = bench::run_program({"modprobe", "zram"});
    if (!loaded || loaded->exit_status != 0 || ::access(kZramControl, F_OK) != 0) {
      return unexpected(std::string("--target zram: the zram module does not load (modprobe zram failed; this kernel "
                                    "may not have it: give --target a file or block device)"));
    }
  }
  const auto id_text = read_line(fmt::format("{}/hot_add", kZramControl));
  if (!id_text || id_text->empty()) {
    return unexpected(fmt::format("--target zram: {}/hot_add gave no new device", kZramControl));
  }
  int id = -1;
  const auto [end, ec] = std::from_chars(id_text->data(), id_text->data() + id_text->size(), id);
  if (ec != std::errc() || id < 0) {
    return unexpected(fmt::format("--target zram: {}/hot_add gave '{}', not a device number", kZramControl, *id_text));
  }
  auto zram = std::unique_ptr<ZramTarget>(new ZramTarget(id));  // removed again on any error below
  if (!write_text(fmt::format("/sys/block/zram{}/disksize", id), std::to_string(size))) {
    return unexpected(fmt::format("--target zram: cannot size /dev/zram{} to {} bytes ({})", id, size,
                                  "a smaller --size may fit"));
  }
  for (int i = 0; i < 100 && ::access(zram->path_.c_str(), F_OK) != 0; ++i) ::usleep(10'000);  // udev makes the node
  UniqueFd fd(::open(zram->path_.c_str(), O_WRONLY | O_DIRECT | O_CLOEXEC));
  if (!fd) return unexpected(fmt::format("--target zram: cannot open {}: {}", zram->path_, std::strerror(errno)));
  std::mt19937_64 rng(0x72696e67);
  auto filled = write_all(fd.get(), size, [&rng](std::byte* p, std::size_t n) {
    for (std::size_t i = 0; i + 8 <= n; i += 8) {
      const std::uint64_t word = rng();
      std::memcpy(p + i, &word, 8);
    }
  });
  if (!filled) return unexpected(fmt::format("--target zram: cannot fill {}: {}", zram->path_, filled.error()));
  return zram;
}

}  // namespace rf::cli
