#include "device/hostile_probes.h"

#include <cerrno>

namespace rf {

namespace {

constexpr std::uint8_t kOpRead = 22;  // IORING_OP_READ: reads into any user address; no policy allows it

constexpr HostileProbe kProbes[] = {
    {"read-into-canary", abi::kOpReadFixed, ProbeAddress::CanaryPage, ProbeOffset::DiskStart, ProbeWitness::CanaryPage,
     -EFAULT, -EFAULT, "READ_FIXED into a VMM canary page outside guest RAM",
     "passthrough: no registered buffer holds it (the kernel); mediated: no buffer window holds it (rule 8)"},
    {"read-past-ram", abi::kOpReadFixed, ProbeAddress::PastGuestRam, ProbeOffset::DiskStart, ProbeWitness::None, -EFAULT,
     -EFAULT, "READ_FIXED to the first address past guest RAM",
     "passthrough: past the last registered buffer (the kernel); mediated: past the last buffer window (rule 8)"},
    {"forbidden-opcode", kOpRead, ProbeAddress::CanaryPage, ProbeOffset::DiskStart, ProbeWitness::CanaryPage, -EACCES,
     -EACCES, "IORING_OP_READ, an opcode no policy allows, into the canary page",
     "passthrough: the ring's restrictions; mediated: the opcode rule (rule 1)"},
    {"write-past-disk-end", abi::kOpWriteFixed, ProbeAddress::GuestBuffer, ProbeOffset::GibPastTheDiskEnd,
     ProbeWitness::ImageSize, -ENOSPC, -ENXIO, "WRITE_FIXED 1 GiB past the end of the disk",
     "passthrough: the loop device the image is attached to (-ENOSPC); mediated: the offset range rule (rule 5, "
     "-ENXIO)"},
};

}  // namespace

std::span<const HostileProbe> hostile_probes() { return kProbes; }

abi::GuestSqe probe_sqe(const HostileProbe& probe, const ProbeTargets& targets) {
  abi::GuestSqe sqe{};
  sqe.opcode = probe.opcode;
  sqe.flags = abi::kSqeFixedFile;
  sqe.fd = 0;
  switch (probe.address) {
    case ProbeAddress::CanaryPage: sqe.addr = targets.canary; break;
    case ProbeAddress::PastGuestRam: sqe.addr = targets.past_ram; break;
    case ProbeAddress::GuestBuffer: sqe.addr = targets.guest_buffer; break;
  }
  sqe.off = probe.offset == ProbeOffset::DiskStart ? 0 : targets.disk_bytes + (std::uint64_t{1} << 30);
  sqe.len = 4096;
  sqe.buf_index = 0;
  sqe.user_data = 0x50524f4245;  // "PROBE"
  return sqe;
}

}  // namespace rf
