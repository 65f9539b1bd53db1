// The C API's disks: rf_disk over rf::Disk.
#include "capi/capi_internal.h"

using namespace rf;
using namespace rf::capi;

namespace {
constexpr std::uint32_t kKnownDiskFlags = RF_DISK_READ_ONLY | RF_DISK_BUFFERED | RF_DISK_UNBOUNDED_FILE;
}  // namespace

extern "C" {

rf_status rf_disk_open(const char* path, uint32_t flags, rf_disk** out) {
  const char* const fn = __func__;
  return guarded(fn, [&] {
    if (path == nullptr || out == nullptr) return invalid_argument(fn, "path or out is NULL");
    if ((flags & ~kKnownDiskFlags) != 0) {
      return invalid_argument(fn, fmt::format("unknown flags {:#x}", flags & ~kKnownDiskFlags));
    }
    DiskOptions options;
    options.read_only = (flags & RF_DISK_READ_ONLY) != 0;
    options.direct_io = (flags & RF_DISK_BUFFERED) == 0;
    options.offset_bound = (flags & RF_DISK_UNBOUNDED_FILE) != 0 ? OffsetBound::None : OffsetBound::LoopDevice;
    auto disk = Disk::open(path, options);
    if (!disk) return fail_with(disk.error());
    *out = new rf_disk(std::move(*disk));
    return RF_OK;
  });
}

uint64_t rf_disk_size(const rf_disk* disk) { return disk == nullptr ? 0 : disk->disk.size_bytes(); }

uint32_t rf_disk_block_size(const rf_disk* disk) { return disk == nullptr ? 0 : disk->disk.logical_block_size(); }

const char* rf_disk_describe(const rf_disk* disk) { return disk == nullptr ? "" : disk->description.c_str(); }

void rf_disk_close(rf_disk* disk) { delete disk; }

}  // extern "C"
