// The Linux-guest rows of `ringfence bench`: Debian's kernel booted in QEMU on a vhost-user-blk
// disk, with fio inside the guest against the bench's target (docs/linux-guest.md):
//   linux-passthrough  rfblk on a passthrough ring, polled (fio --hipri on a poll queue)
//   linux-mediated     rfblk on a mediated ring, polled the same way
//   linux-virtio       the stock virtio_blk on `ringfence vhost-user-blk`'s virtio path
//   qsd-virtio         the stock virtio_blk on qemu-storage-daemon's vhost-user-blk export
//                      (aio=io_uring, cache.direct=on): "virtqueues with an iothread"
// Each run boots a guest, so a cell costs a boot besides its ramp and runtime. IOPS and latency
// are fio's, inside the guest; CPU per I/O is the back-end process's, on the host, over the
// measured run.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "engine/fio_job.h"
#include "util/result.h"

namespace rf::bench {

enum class LinuxGuestRow { Passthrough, Mediated, Virtio, QsdVirtio };
std::string_view linux_row_name(LinuxGuestRow row);

struct LinuxGuestSetup {
  std::string image_dir;  // vmlinuz and initramfs.cpio from tests/qemu/make-initramfs.sh, with rfblk.ko
  std::string accel = "tcg";
  std::string ringfence;  // the ringfence binary that serves the disk; empty: this program
};
// The guest image the build makes (`cmake --build build --target guest-image`).
std::string default_guest_image_dir();

// Why `row` cannot run with `setup` (a missing tool, image or module), or nullopt.
std::optional<std::string> linux_row_unsupported(LinuxGuestRow row, const LinuxGuestSetup& setup);

// One run: `fio` describes the job the guest runs (target, depth, pattern, block size, ramp,
// runtime; hipri is the row's); writes reach the target only for a pattern that writes.
Result<RowSummary, std::string> run_linux_guest_job(LinuxGuestRow row, const FioJob& fio, const LinuxGuestSetup& setup);

// For the table's header: "QEMU 7.2.x -accel tcg, kernel 6.1.0-…, -smp 1, 512 MiB".
std::string linux_guest_description(const LinuxGuestSetup& setup);

}  // namespace rf::bench
