#include "ring/sqe_exposure.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "ring/ring_error.h"
#include "ring/setup.h"
#include "host/thread_capabilities.h"
#include "util/address.h"
#include "util/mmap_region.h"
#include "util/unique_fd.h"

namespace rf {

namespace {

constexpr std::uint32_t kBlock = 4096;

// Linux's ioprio encoding: class in the top 3 bits of 16.
constexpr std::uint16_t ioprio(unsigned klass, unsigned level) { return static_cast<std::uint16_t>(klass << 13 | level); }

// RWF_* (include/uapi/linux/fs.h), by the release that added them.
struct RwFlag {
  std::uint32_t bit;
  const char* name;
};
constexpr RwFlag kRwFlags[] = {
    {0x01, "HIPRI"}, {0x02, "DSYNC"}, {0x04, "SYNC"}, {0x08, "NOWAIT"}, {0x10, "APPEND"},
    {0x20, "NOAPPEND"}, {0x40, "ATOMIC"}, {0x80, "DONTCACHE"}, {0x100, "NOSIGNAL"},
};

std::string result_label(int res) { return res >= 0 ? fmt::format("{}", res) : errno_label(-res); }

// One restricted ring over the temporary file, like a passthrough device's: the block opcodes,
// FIXED_FILE, one fixed buffer.
class ProbeRing {
 public:
  static Result<ProbeRing, std::string> create(int file) {
    auto buffer = MmapRegion::map_anonymous(2 * kBlock);
    if (!buffer) return unexpected(buffer.error().message);
    RingOptions options;
    options.sq_entries = 4;
    auto disabled = DisabledRing::create(options);
    if (!disabled) return unexpected(disabled.error().message);
    const int fds[] = {file};
    if (auto r = disabled->register_files(fds); !r) return unexpected(r.error().message);
    const BufferRegion region{buffer->bytes(), kBlock};  // the second page stays outside it
    if (auto r = disabled->register_buffers({&region, 1}); !r) return unexpected(r.error().message);
    RestrictionSet set;
    set.allow(SqeOpcode::ReadFixed).allow(SqeOpcode::WriteFixed).allow(SqeOpcode::Fsync).require_flags(sqe_flag::kFixedFile);
    auto restricted = std::move(*disabled).restrict(set);
    if (!restricted) return unexpected(restricted.error().message);
    auto ring = std::move(*restricted).enable();
    if (!ring) return unexpected(ring.error().message);
    return ProbeRing(std::move(*ring), std::move(*buffer));
  }

  Sqe read() const { return Sqe::read_fixed(FileRef::fixed({0}), buffer_.bytes(), kBlock, 0, BufferIndex{0}); }
  Sqe write() const { return Sqe::write_fixed(FileRef::fixed({0}), buffer_.bytes(), kBlock, 0, BufferIndex{0}); }
  static Sqe fsync() { return Sqe::fsync(FileRef::fixed({0})); }
  // A mapped address of the VMM's that no buffer covers, zero-filled.
  std::uint64_t vmm_address() const { return address_of(buffer_.bytes() + kBlock); }

  int run(const Sqe& sqe) {
    auto cqe = ring_.submit_and_wait(sqe, std::chrono::seconds(5));
    return cqe ? cqe->res : -ETIME;
  }

 private:
  ProbeRing(Ring ring, MmapRegion buffer) : ring_(std::move(ring)), buffer_(std::move(buffer)) {}
  Ring ring_;
  MmapRegion buffer_;
};

SqeFieldFinding probe_ioprio(ProbeRing& ring) {
  SqeFieldFinding f{"ioprio", "READ_FIXED, WRITE_FIXED", false, "", ""};
  Sqe rt = ring.read(), idle = ring.read(), be = ring.read(), bad = ring.read();
  rt.ioprio = ioprio(1, 0);
  be.ioprio = ioprio(2, 0);
  idle.ioprio = ioprio(3, 0);
  bad.ioprio = ioprio(7, 0);
  const int r_rt = ring.run(rt), r_be = ring.run(be), r_idle = ring.run(idle), r_bad = ring.run(bad);
  f.interpreted = r_rt != static_cast<int>(kBlock) || r_bad != static_cast<int>(kBlock);
  f.seen = fmt::format("real-time class: {}; best-effort level 0: {}; idle: {}; class 7: {}", result_label(r_rt),
                       result_label(r_be), result_label(r_idle), result_label(r_bad));
  f.lets_a_guest = r_rt == static_cast<int>(kBlock)
                       ? "ask for real-time I/O priority on the host's disks (the ring's credentials allow it)"
                       : "choose its requests' best-effort level or the idle class on the host's disks; real-time is "
                         "refused because the ring's threads have no CAP_SYS_ADMIN or CAP_SYS_NICE";
  return f;
}

SqeFieldFinding probe_rw_flags(ProbeRing& ring) {
  SqeFieldFinding f{"rw_flags", "READ_FIXED, WRITE_FIXED", false, "", ""};
  std::vector<std::string> accepted, refused;
  for (const RwFlag& flag : kRwFlags) {
    Sqe w = ring.write();
    w.op_flags = flag.bit;
    const int res = ring.run(w);
    if (res == static_cast<int>(kBlock)) {
      accepted.emplace_back(flag.name);
    } else {
      refused.push_back(fmt::format("{} {}", flag.name, result_label(res)));
    }
  }
  Sqe unknown = ring.write();
  unknown.op_flags = 1u << 30;
  const int r_unknown = ring.run(unknown);
  f.interpreted = r_unknown != static_cast<int>(kBlock) || !accepted.empty();
  f.seen = fmt::format("accepted on a WRITE_FIXED: {}; refused: {}; an unknown bit: {}",
                       accepted.empty() ? "none" : fmt::format("{}", fmt::join(accepted, ", ")),
                       refused.empty() ? "none" : fmt::format("{}", fmt::join(refused, ", ")), result_label(r_unknown));
  f.lets_a_guest = "make its writes synchronous on the host (DSYNC, SYNC), fail instead of waiting (NOWAIT), write "
                   "at the end of a regular file (APPEND) or bypass the page cache's retention (DONTCACHE): costs "
                   "and semantics the VMM did not choose, on the guest's own disks";
  return f;
}

SqeFieldFinding probe_attributes(ProbeRing& ring) {
  SqeFieldFinding f{"attr_ptr / attr_type_mask (addr3, __pad2)", "READ_FIXED, WRITE_FIXED", false, "", ""};
  Sqe null_ptr = ring.read(), mapped = ring.read();
  null_ptr.pad2 = 1;  // IORING_RW_ATTR_FLAG_PI
  null_ptr.addr3 = 0;
  mapped.pad2 = 1;
  mapped.addr3 = ring.vmm_address();
  const int r_null = ring.run(null_ptr), r_mapped = ring.run(mapped);
  f.interpreted = r_null != r_mapped || r_null != static_cast<int>(kBlock);
  f.seen = fmt::format("PI attribute at an unmapped address: {}; at a mapped VMM address outside guest RAM: {}",
                       result_label(r_null), result_label(r_mapped));
  f.lets_a_guest = f.interpreted
                       ? "make the kernel read a struct io_uring_attr_pi from any address in the VMM: unmapped and "
                         "mapped addresses complete differently, so the guest can map the VMM's address space"
                       : "nothing on this kernel (it ignores the field)";
  return f;
}

SqeFieldFinding probe_write_stream(ProbeRing& ring) {
  SqeFieldFinding f{"write_stream (splice_fd_in's low byte)", "WRITE_FIXED", false, "", ""};
  Sqe w = ring.write();
  w.splice_fd_in = 1;
  const int res = ring.run(w);
  f.interpreted = res != static_cast<int>(kBlock);
  f.seen = fmt::format("stream 1 on a file without streams: {}", result_label(res));
  f.lets_a_guest = f.interpreted ? "pick the device's write stream (data placement hints) where the disk has streams"
                                 : "nothing for this file; on a block device with write streams (NVMe FDP), pick one";
  return f;
}

SqeFieldFinding probe_fsync_flags(ProbeRing& ring) {
  SqeFieldFinding f{"fsync_flags, off, len", "FSYNC", false, "", ""};
  Sqe datasync = ProbeRing::fsync(), bad = ProbeRing::fsync(), range = ProbeRing::fsync();
  datasync.op_flags = 1;  // IORING_FSYNC_DATASYNC
  bad.op_flags = 2;
  range.off = kBlock;
  range.len = kBlock;
  const int r_datasync = ring.run(datasync), r_bad = ring.run(bad), r_range = ring.run(range);
  f.interpreted = r_bad != 0;
  f.seen = fmt::format("DATASYNC: {}; an unknown flag: {}; a range: {}", result_label(r_datasync), result_label(r_bad),
                       result_label(r_range));
  f.lets_a_guest = "choose fdatasync instead of fsync, and sync a byte range of its disk only";
  return f;
}

SqeFieldFinding probe_personality(ProbeRing& ring) {
  SqeFieldFinding f{"personality", "all", false, "", ""};
  Sqe r = ring.read();
  r.personality = 1;
  const int res = ring.run(r);
  f.interpreted = res != static_cast<int>(kBlock);
  f.seen = fmt::format("personality 1, none registered: {}", result_label(res));
  f.lets_a_guest = "nothing: only credentials the VMM registers can be named, and devices register none (the "
                   "restrictions deny IORING_REGISTER_PERSONALITY after enable)";
  return f;
}

SqeExposure run_probes() {
  SqeExposure out;
  // As a device's ring: created and driven by a thread without capabilities.
  if (auto dropped = drop_thread_capabilities_except(0); !dropped) {
    out.error = "dropping the probe thread's capabilities: " + dropped.error().message;
    return out;
  }
  const char* env = std::getenv("TMPDIR");
  const std::string dir = env != nullptr && *env != '\0' ? env : "/var/tmp";
  UniqueFd file(::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
  if (!file) {
    out.error = fmt::format("cannot create a temporary file in {}: {}", dir, std::strerror(errno));
    return out;
  }
  const std::string block(4 * kBlock, '\x5a');
  if (::pwrite(file.get(), block.data(), block.size(), 0) != static_cast<ssize_t>(block.size())) {
    out.error = fmt::format("cannot write a temporary file in {}: {}", dir, std::strerror(errno));
    return out;
  }
  out.target = fmt::format("a temporary file in {}", dir);
  auto ring = ProbeRing::create(file.get());
  if (!ring) {
    out.error = "the probe ring: " + ring.error();
    return out;
  }
  if (const int res = ring->run(ring->read()); res != static_cast<int>(kBlock)) {
    out.error = fmt::format("a plain READ_FIXED of the probe file returned {}", result_label(res));
    return out;
  }
  out.fields = {probe_ioprio(*ring),     probe_rw_flags(*ring),    probe_attributes(*ring),
                probe_write_stream(*ring), probe_fsync_flags(*ring), probe_personality(*ring)};
  out.ran = true;
  return out;
}

}  // namespace

SqeExposure probe_sqe_exposure() {
  SqeExposure out;
  // On a thread of its own: dropping capabilities is for good, and per thread.
  try {
    std::thread([&out] { out = run_probes(); }).join();
  } catch (const std::system_error& e) {
    out.error = fmt::format("starting the probe thread: {}", e.what());
  }
  return out;
}

}  // namespace rf
