#include "ring/iopoll_probe.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "ring/setup.h"
#include "sys/syscalls.h"
#include "util/mmap_region.h"
#include "util/unique_fd.h"

namespace rf {

namespace {

namespace fs = std::filesystem;

constexpr std::uint32_t kProbeReadBytes = 4096;  // a multiple of every logical block size

// The sysfs directory of the whole disk that holds `dev` (a partition resolves to its disk).
std::optional<fs::path> disk_sysfs_dir(dev_t dev) {
  std::error_code ec;
  fs::path dir = fs::canonical(fmt::format("/sys/dev/block/{}:{}", major(dev), minor(dev)), ec);
  if (ec) return std::nullopt;
  if (fs::exists(dir / "partition", ec)) dir = dir.parent_path();
  return dir;
}

std::optional<int> read_int(const fs::path& file) {
  std::ifstream in(file);
  int v = 0;
  if (!(in >> v)) return std::nullopt;
  return v;
}

// A polled O_DIRECT READ_FIXED of the first block, through a restricted IOPOLL ring.
// Returns the CQE result, or a sentence when the attempt could not be made.
Result<int, std::string> polled_read(int fd) {
  RingOptions options;
  options.sq_entries = 4;
  options.iopoll = true;
  auto disabled = DisabledRing::create(options);
  if (!disabled) return unexpected(disabled.error().message);
  auto buffer = MmapRegion::map_anonymous(kProbeReadBytes);
  if (!buffer) return unexpected(buffer.error().message);
  const int fds[] = {fd};
  if (auto r = disabled->register_files(fds); !r) return unexpected(r.error().message);
  const BufferRegion region{buffer->bytes(), buffer->size()};
  auto table = disabled->register_buffers({&region, 1});
  if (!table) return unexpected(table.error().message);
  RestrictionSet set;
  set.allow(SqeOpcode::ReadFixed).require_flags(sqe_flag::kFixedFile);
  auto restricted = std::move(*disabled).restrict(set);
  if (!restricted) return unexpected(restricted.error().message);
  auto ring = std::move(*restricted).enable();
  if (!ring) return unexpected(ring.error().message);
  auto cqe = ring->submit_and_wait(
      Sqe::read_fixed(FileRef::fixed({0}), buffer->data(), kProbeReadBytes, 0, table->pieces()[0].index),
      std::chrono::seconds(5));
  if (!cqe) return unexpected(cqe.error().message);
  return cqe->res;
}

}  // namespace

IopollStatus probe_iopoll(const std::string& target) {
  IopollStatus status;
  status.target = target;
  struct stat st {};
  if (::stat(target.c_str(), &st) != 0) {
    status.detail = fmt::format("cannot stat it: {}", std::strerror(errno));
    return status;
  }
  const bool is_block = S_ISBLK(st.st_mode);
  if (!is_block && !S_ISREG(st.st_mode)) {
    status.detail = "it is neither a regular file nor a block device";
    return status;
  }
  const auto disk = disk_sysfs_dir(is_block ? st.st_rdev : st.st_dev);
  if (disk) status.device = disk->filename().string();

  UniqueFd fd(::open(target.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC));
  if (!fd) {
    const int err = errno;
    status.detail = err == EINVAL ? std::string("it cannot be opened with O_DIRECT, which polled I/O needs")
                                  : fmt::format("cannot open it with O_DIRECT: {}", std::strerror(err));
    return status;
  }
  const long long size = is_block ? sys::block_device_size(fd.get()) : static_cast<long long>(st.st_size);
  if (size < kProbeReadBytes) {
    status.detail = fmt::format("it is smaller than {} bytes; a polled read cannot be tried", kProbeReadBytes);
    return status;
  }

  auto res = polled_read(fd.get());
  if (!res) {
    status.detail = "could not try a polled read: " + res.error();
    return status;
  }
  // queue/io_poll: 1 when the device has poll queues; 0 (or absent) when it does not.
  const int io_poll = disk ? read_int(*disk / "queue" / "io_poll").value_or(0) : 0;
  const std::string name = disk ? disk->filename().string() : std::string();
  const std::string no_queues = fmt::format(
      "device {} has no poll queues (/sys/block/{}/queue/io_poll = 0); NVMe with nvme.poll_queues > 0 has them", name, name);

  if (*res >= 0 && io_poll != 0) {
    status.supported = true;
    status.detail = fmt::format("device {} has poll queues (queue/io_poll = {}) and a polled read completed", name,
                                io_poll);
  } else if (*res >= 0) {
    // A read of a hole, or of a device without poll support that completes by interrupt.
    status.detail = disk ? fmt::format("a polled read completed, but without polling: {}", no_queues)
                         : std::string("a polled read completed, but the file is not backed by a single block device "
                                       "whose poll queues could be checked");
  } else if (*res != -EOPNOTSUPP) {
    status.detail = fmt::format("a polled read failed: {}", std::strerror(-*res));
  } else if (!disk) {
    status.detail = "the kernel refused a polled read (-EOPNOTSUPP): the file is not on a block device and its "
                    "filesystem has no ->iopoll (tmpfs, for one, has none)";
  } else if (io_poll == 0) {
    status.detail = fmt::format("the kernel refused a polled read (-EOPNOTSUPP): {}", no_queues);
  } else {
    status.detail = fmt::format("the kernel refused a polled read (-EOPNOTSUPP) although device {} polls: the "
                                "filesystem does not support polled direct I/O",
                                name);
  }
  return status;
}

}  // namespace rf
