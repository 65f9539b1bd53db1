#include "ring/ring_core.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <limits>

#include <fmt/format.h>

#include "ring/fresh_ring_memory.h"
#include "ring/kernel_facts.h"
#include "sys/syscalls.h"
#include "util/address.h"
#include "util/checked_math.h"

namespace rf {

namespace {

struct FlagName {
  std::uint32_t bit;
  const char* name;
};

constexpr std::array kSetupFlagNames = std::to_array<FlagName>({
    {IORING_SETUP_IOPOLL, "IOPOLL"},
    {IORING_SETUP_SQPOLL, "SQPOLL"},
    {IORING_SETUP_SQ_AFF, "SQ_AFF"},
    {IORING_SETUP_CQSIZE, "CQSIZE"},
    {IORING_SETUP_ATTACH_WQ, "ATTACH_WQ"},
    {IORING_SETUP_R_DISABLED, "R_DISABLED"},
    {IORING_SETUP_NO_MMAP, "NO_MMAP"},
    {IORING_SETUP_NO_SQARRAY, "NO_SQARRAY"},
    {IORING_SETUP_SUBMIT_ALL, "SUBMIT_ALL"},
});

std::string setup_flags_label(std::uint32_t flags) {
  std::string out;
  for (const auto& f : kSetupFlagNames) {
    if ((flags & f.bit) == 0) continue;
    if (!out.empty()) out += '|';
    out += f.name;
  }
  return out.empty() ? "none" : out;
}

RingError invalid(std::string message) { return RingError{RingErrc::InvalidOptions, 0, std::move(message)}; }

unsigned round_up_pow2(unsigned v) { return std::bit_ceil(v); }

bool page_aligned(const void* p) { return address_of(p) % page_size() == 0; }

// Whether `fd` is an io_uring instance: an open descriptor whose /proc link reads
// "anon_inode:[io_uring]". Without /proc the kernel has the last word.
bool is_io_uring_fd(int fd) {
  if (fd < 0 || ::fcntl(fd, F_GETFD) < 0) return false;
  char target[64] = {};
  const std::string link = fmt::format("/proc/self/fd/{}", fd);
  const ssize_t n = ::readlink(link.c_str(), target, sizeof(target) - 1);
  if (n < 0) return true;
  return std::string_view(target, static_cast<std::size_t>(n)) == "anon_inode:[io_uring]";
}

// Options that can be checked without the kernel.
Result<void, RingError> validate_static(const RingOptions& o) {
  if (o.sq_entries == 0 || o.sq_entries > kMaxSqEntries) {
    return unexpected(invalid(fmt::format("sq_entries {} is outside 1..{}", o.sq_entries, kMaxSqEntries)));
  }
  if (o.cq_entries) {
    if (*o.cq_entries == 0 || *o.cq_entries > kMaxCqEntries) {
      return unexpected(invalid(fmt::format("cq_entries {} is outside 1..{}", *o.cq_entries, kMaxCqEntries)));
    }
    if (round_up_pow2(*o.cq_entries) < round_up_pow2(o.sq_entries)) {
      return unexpected(invalid(fmt::format(
          "cq_entries {} is smaller than sq_entries {}: the CQ must hold at least one completion per SQ slot",
          *o.cq_entries, o.sq_entries)));
    }
  }
  if (o.sqpoll) {
    if (o.sqpoll->idle.count() < 0 || o.sqpoll->idle.count() > std::numeric_limits<std::uint32_t>::max()) {
      return unexpected(invalid(fmt::format("SQPOLL idle time {} ms is out of range", o.sqpoll->idle.count())));
    }
    if (o.sqpoll->cpu) {
      const long cpus = ::sysconf(_SC_NPROCESSORS_CONF);
      if (cpus > 0 && *o.sqpoll->cpu >= static_cast<unsigned long>(cpus)) {
        return unexpected(invalid(fmt::format("SQPOLL cpu {} does not exist: this machine has CPUs 0..{}",
                                              *o.sqpoll->cpu, cpus - 1)));
      }
    }
  }
  if (o.attach_wq_fd && !is_io_uring_fd(*o.attach_wq_fd)) {
    // The kernel answers EINVAL (or ENXIO), which would read like a missing feature.
    return unexpected(invalid(fmt::format("attach_wq_fd {} is not the descriptor of an io_uring instance",
                                          *o.attach_wq_fd)));
  }
  if (o.caller_memory) {
    const CallerRingMemory& m = *o.caller_memory;
    if (m.rings.empty() || m.sqes.empty()) {
      return unexpected(invalid("caller ring memory: both the rings area and the SQE area must be non-empty"));
    }
    if (!page_aligned(m.rings.data()) || !page_aligned(m.sqes.data())) {
      return unexpected(invalid(fmt::format(
          "caller ring memory must be page-aligned ({} bytes): rings at {}, SQEs at {}", page_size(),
          static_cast<const void*>(m.rings.data()), static_cast<const void*>(m.sqes.data()))));
    }
    const std::uintptr_t r0 = address_of(m.rings.data());
    const std::uintptr_t s0 = address_of(m.sqes.data());
    if (r0 < s0 + m.sqes.size() && s0 < r0 + m.rings.size()) {
      return unexpected(invalid("caller ring memory: the rings area and the SQE area overlap"));
    }
  }
  return {};
}

RingError setup_error(int err, std::uint32_t flags) {
  const std::string what = fmt::format("io_uring_setup (flags {}) failed: {}", setup_flags_label(flags), errno_label(err));
  switch (err) {
    case EPERM:
      return RingError{RingErrc::IoUringUnavailable, err, fmt::format("{}. {}", what, explain_io_uring_eperm())};
    case ENOSYS:
      return RingError{RingErrc::IoUringUnavailable, err,
                       fmt::format("{}. This kernel has no io_uring (CONFIG_IO_URING is off) or a seccomp "
                                   "filter hides it",
                                   what)};
    case EINVAL:
      return RingError{RingErrc::Unsupported, err,
                       fmt::format("{}. Kernel {} does not accept one of these flags or sizes; `ringfence probe` "
                                   "lists the setup flags that work here",
                                   what, kernel_release())};
    case ENXIO:
    case EBADF:
      if ((flags & IORING_SETUP_ATTACH_WQ) != 0) {
        return RingError{RingErrc::InvalidOptions, err,
                         fmt::format("{}. attach_wq_fd is not the descriptor of an io_uring instance", what)};
      }
      break;
    case EFAULT:
      if ((flags & IORING_SETUP_NO_MMAP) != 0) {
        return RingError{RingErrc::InvalidOptions, err,
                         fmt::format("{}. The caller ring memory is not mapped (or not fully)", what)};
      }
      break;
    case ENOMEM:
      return RingError{RingErrc::Setup, err,
                       fmt::format("{}. The kernel could not allocate or pin the ring memory; RLIMIT_MEMLOCK may "
                                   "be too low for this ring size",
                                   what)};
    default:
      break;
  }
  return RingError{RingErrc::Setup, err, what};
}

io_uring_params params_for(const RingOptions& o) {
  io_uring_params p{};
  p.flags = setup_flags_for(o);
  if (o.cq_entries) p.cq_entries = *o.cq_entries;
  if (o.sqpoll) {
    p.sq_thread_idle = static_cast<std::uint32_t>(o.sqpoll->idle.count());
    if (o.sqpoll->cpu) p.sq_thread_cpu = *o.sqpoll->cpu;
  }
  if (o.attach_wq_fd) p.wq_fd = static_cast<std::uint32_t>(*o.attach_wq_fd);
  if (o.caller_memory) {
    sys::user_addr(p.cq_off) = address_of(o.caller_memory->rings.data());
    sys::user_addr(p.sq_off) = address_of(o.caller_memory->sqes.data());
  }
  return p;
}

SqRingOffsets sq_offsets(const io_uring_params& p) {
  return SqRingOffsets{p.sq_off.head,  p.sq_off.tail,    p.sq_off.ring_mask, p.sq_off.ring_entries,
                       p.sq_off.flags, p.sq_off.dropped, p.sq_off.array,     (p.flags & IORING_SETUP_NO_SQARRAY) == 0};
}

CqRingOffsets cq_offsets(const io_uring_params& p) {
  return CqRingOffsets{p.cq_off.head,     p.cq_off.tail, p.cq_off.ring_mask, p.cq_off.ring_entries,
                       p.cq_off.overflow, p.cq_off.cqes, p.cq_off.flags};
}

// Bytes of ring memory (headers, CQEs, SQ index array) for the offsets the kernel reported.
std::size_t rings_bytes(const io_uring_params& p) {
  const std::size_t cq_end = p.cq_off.cqes + std::size_t{p.cq_entries} * sizeof(io_uring_cqe);
  if ((p.flags & IORING_SETUP_NO_SQARRAY) != 0) return cq_end;
  const std::size_t sq_end = p.sq_off.array + std::size_t{p.sq_entries} * sizeof(std::uint32_t);
  return std::max(cq_end, sq_end);
}

std::size_t page_round(std::size_t n) { return *checked_align_up<std::size_t>(n, page_size()); }

}  // namespace

std::uint32_t setup_flags_for(const RingOptions& o) {
  std::uint32_t flags = IORING_SETUP_R_DISABLED;
  if (o.cq_entries) flags |= IORING_SETUP_CQSIZE;
  if (o.sqpoll) {
    flags |= IORING_SETUP_SQPOLL;
    if (o.sqpoll->cpu) flags |= IORING_SETUP_SQ_AFF;
  }
  if (o.iopoll) flags |= IORING_SETUP_IOPOLL;
  if (o.no_sqarray) flags |= IORING_SETUP_NO_SQARRAY;
  if (o.submit_all) flags |= IORING_SETUP_SUBMIT_ALL;
  if (o.caller_memory) flags |= IORING_SETUP_NO_MMAP;
  if (o.attach_wq_fd) flags |= IORING_SETUP_ATTACH_WQ;
  return flags;
}

Result<RingMemoryLayout, RingError> ring_memory_layout(const RingOptions& options) {
  RingOptions shape;
  shape.sq_entries = options.sq_entries;
  shape.cq_entries = options.cq_entries;
  shape.no_sqarray = options.no_sqarray;
  RF_TRY_VOID(validate_static(shape));
  io_uring_params p = params_for(shape);
  const int fd = sys::io_uring_setup(shape.sq_entries, &p);
  if (fd < 0) return unexpected(setup_error(-fd, p.flags));
  UniqueFd owned(fd);
  return RingMemoryLayout{p.sq_entries, p.cq_entries, page_round(rings_bytes(p)),
                          page_round(std::size_t{p.sq_entries} * sizeof(io_uring_sqe))};
}

void RingCore::close() noexcept {
  // The queues point into the mappings: forget them first, then unmap, then close (the order
  // of the members' destructors).
  sq_ = SubmissionQueue{};
  cq_ = CompletionQueue{};
  sqes_map_.reset();
  rings_map_.reset();
  fd_.reset();
}

Result<RingCore, RingError> RingCore::create(const RingOptions& options) {
  RF_TRY_VOID(validate_static(options));
  if (options.caller_memory) {
    auto layout = ring_memory_layout(options);
    if (!layout) return unexpected(std::move(layout).error());
    const CallerRingMemory& m = *options.caller_memory;
    if (m.rings.size() < layout->rings_bytes || m.sqes.size() < layout->sqes_bytes) {
      return unexpected(invalid(fmt::format(
          "caller ring memory is too small for {} SQ / {} CQ entries: rings need {} bytes (got {}), SQEs need {} "
          "bytes (got {})",
          layout->sq_entries, layout->cq_entries, layout->rings_bytes, m.rings.size(), layout->sqes_bytes,
          m.sqes.size())));
    }
  }

  if (options.caller_memory) {
    // A ring that used this memory before may still be writing it (fresh_ring_memory.h).
    give_fresh_pages(options.caller_memory->rings);
    give_fresh_pages(options.caller_memory->sqes);
  }
  io_uring_params p = params_for(options);
  const int fd = sys::io_uring_setup(options.sq_entries, &p);
  if (fd < 0) return unexpected(setup_error(-fd, p.flags));

  RingCore core;
  core.fd_.reset(fd);
  core.info_ = RingInfo{p.sq_entries,
                        p.cq_entries,
                        p.flags,
                        p.features,
                        (p.flags & IORING_SETUP_SQPOLL) != 0,
                        (p.flags & IORING_SETUP_IOPOLL) != 0,
                        (p.flags & IORING_SETUP_NO_MMAP) != 0,
                        (p.flags & IORING_SETUP_NO_SQARRAY) != 0,
                        sq_offsets(p),
                        cq_offsets(p)};

  std::byte* rings = nullptr;
  std::byte* sqes = nullptr;
  if (options.caller_memory) {
    rings = options.caller_memory->rings.data();
    sqes = options.caller_memory->sqes.data();
  } else {
    if ((p.features & IORING_FEAT_SINGLE_MMAP) == 0) {
      return unexpected(RingError{RingErrc::Unsupported, 0,
                                  "this kernel maps the SQ and CQ rings separately (no IORING_FEAT_SINGLE_MMAP, "
                                  "before Linux 5.4); ringfence needs 5.10 or newer"});
    }
    auto ring_map = MmapRegion::map_fd(fd, IORING_OFF_SQ_RING, rings_bytes(p), PROT_READ | PROT_WRITE,
                                       MAP_SHARED | MAP_POPULATE);
    if (!ring_map) return unexpected(RingError{RingErrc::Mmap, ring_map.error().sys_errno, "mapping the SQ/CQ rings: " + ring_map.error().message});
    auto sqe_map = MmapRegion::map_fd(fd, IORING_OFF_SQES, std::size_t{p.sq_entries} * sizeof(io_uring_sqe),
                                      PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE);
    if (!sqe_map) return unexpected(RingError{RingErrc::Mmap, sqe_map.error().sys_errno, "mapping the SQE array: " + sqe_map.error().message});
    core.rings_map_ = std::move(*ring_map);
    core.sqes_map_ = std::move(*sqe_map);
    rings = core.rings_map_.bytes();
    sqes = core.sqes_map_.bytes();
  }
  core.sq_ = SubmissionQueue(rings, sqes, core.info_.sq_offsets);
  core.cq_ = CompletionQueue(rings, core.info_.cq_offsets);
  return core;
}

}  // namespace rf
