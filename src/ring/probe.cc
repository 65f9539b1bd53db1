#include "ring/probe.h"

#include <sys/resource.h>

#include <mutex>
#include <vector>

#include <fmt/format.h>

#include "ring/kernel_facts.h"
#include "ring/setup.h"
#include "sys/syscalls.h"
#include "util/mmap_region.h"

namespace rf {

namespace {

FeatureStatus from_result(const Result<DisabledRing, RingError>& r, std::string what_worked) {
  if (r) return FeatureStatus{true, std::move(what_worked)};
  return FeatureStatus{false, r.error().message};
}

// IO_URING_OP_SUPPORTED for every opcode the kernel reports (IORING_REGISTER_PROBE, allowed on
// a ring that is not yet restricted).
std::vector<SqeOpcodeStatus> probe_sqe_opcodes(int ring_fd) {
  constexpr unsigned kSlots = 256;
  std::vector<std::byte> storage(sizeof(io_uring_probe) + kSlots * sizeof(io_uring_probe_op));
  // SAFETY: storage is zeroed, large enough for the header plus kSlots ops, and suitably
  // aligned by the allocator for a struct of 32-bit fields.
  auto* probe = reinterpret_cast<io_uring_probe*>(storage.data());
  std::vector<SqeOpcodeStatus> out;
  if (sys::io_uring_register(ring_fd, IORING_REGISTER_PROBE, probe, kSlots) < 0) return out;
  for (unsigned op = 0; op <= probe->last_op && op < probe->ops_len; ++op) {
    out.push_back(SqeOpcodeStatus{static_cast<std::uint8_t>(op), sqe_opcode_label(op),
                                  (probe->ops[op].flags & IO_URING_OP_SUPPORTED) != 0});
  }
  return out;
}

// Whether the kernel accepts register opcode `op` in a restriction set (it rejects opcodes at
// or above its IORING_REGISTER_LAST with EINVAL).
bool restriction_accepts_register_op(unsigned op) {
  RingOptions options;
  options.sq_entries = 1;
  auto ring = DisabledRing::create(options);
  if (!ring) return false;
  io_uring_restriction entry{};
  entry.opcode = IORING_RESTRICTION_REGISTER_OP;
  entry.register_op = static_cast<std::uint8_t>(op);
  return sys::io_uring_register(ring->fd(), IORING_REGISTER_RESTRICTIONS, &entry, 1) == 0;
}

// The number of register opcodes the kernel knows: the first opcode it rejects, found by
// binary search over 0..255 (the field is one byte).
unsigned probe_register_op_count() {
  if (!restriction_accepts_register_op(0)) return 0;
  unsigned lo = 0;    // accepted
  unsigned hi = 256;  // rejected (or out of the byte's range)
  while (hi - lo > 1) {
    const unsigned mid = lo + (hi - lo) / 2;
    (restriction_accepts_register_op(mid) ? lo : hi) = mid;
  }
  return hi;
}

MemlockStatus probe_memlock() {
  MemlockStatus m;
  rlimit limit{};
  if (::getrlimit(RLIMIT_MEMLOCK, &limit) == 0) {
    if (limit.rlim_cur != RLIM_INFINITY) m.soft_bytes = limit.rlim_cur;
    if (limit.rlim_max != RLIM_INFINITY) m.hard_bytes = limit.rlim_max;
  }
  m.cap_ipc_lock = sys::has_cap_ipc_lock() == 1;
  return m;
}

FeatureStatus probe_no_mmap() {
  RingOptions options;
  options.sq_entries = 8;
  auto layout = ring_memory_layout(options);
  if (!layout) return FeatureStatus{false, layout.error().message};
  auto memory = MmapRegion::map_anonymous(layout->rings_bytes + layout->sqes_bytes);
  if (!memory) return FeatureStatus{false, memory.error().message};
  options.caller_memory = CallerRingMemory{memory->span().first(layout->rings_bytes),
                                           memory->span().subspan(layout->rings_bytes)};
  return from_result(DisabledRing::create(options),
                     fmt::format("rings placed in caller memory ({} + {} bytes for 8 entries)", layout->rings_bytes,
                                 layout->sqes_bytes));
}

FeatureStatus probe_attach_wq() {
  RingOptions first;
  first.sq_entries = 4;
  first.sqpoll = SqPollOptions{};
  auto owner = DisabledRing::create(first);
  if (!owner) return FeatureStatus{false, "needs an SQPOLL ring to attach to: " + owner.error().message};
  RingOptions second = first;
  second.attach_wq_fd = owner->fd();
  return from_result(DisabledRing::create(second), "a second SQPOLL ring shared the first one's SQPOLL thread");
}

FeatureStatus probe_restrictions() {
  auto disabled = DisabledRing::create(RingOptions{});
  if (!disabled) return FeatureStatus{false, disabled.error().message};
  RestrictionSet set;
  set.allow(SqeOpcode::Nop);
  auto restricted = std::move(*disabled).restrict(set);
  if (!restricted) return FeatureStatus{false, restricted.error().message};
  auto ring = std::move(*restricted).enable();
  if (!ring) return FeatureStatus{false, ring.error().message};
  const SelfCheckReport& r = ring->self_check();
  return FeatureStatus{true, fmt::format("enforced: after enable, denied {} returned EACCES and a denied {} SQE "
                                         "completed with -EACCES",
                                         register_opcode_label(r.register_probe), sqe_opcode_label(r.sqe_probe))};
}

constexpr const char* kFeatureNames[] = {
    "SINGLE_MMAP", "NODROP",         "SUBMIT_STABLE", "RW_CUR_POS",      "CUR_PERSONALITY", "FAST_POLL",
    "POLL_32BITS", "SQPOLL_NONFIXED", "EXT_ARG",      "NATIVE_WORKERS",  "RSRC_TAGS",       "CQE_SKIP",
    "LINKED_FILE", "REG_REG_RING",   "RECVSEND_BUNDLE", "MIN_TIMEOUT",  "RW_ATTR",         "NO_IOWAIT",
};

}  // namespace

std::vector<std::string> feature_names(std::uint32_t features) {
  std::vector<std::string> out;
  for (unsigned bit = 0; bit < 32; ++bit) {
    if ((features & (1U << bit)) == 0) continue;
    out.push_back(bit < std::size(kFeatureNames) ? kFeatureNames[bit] : fmt::format("bit{}", bit));
  }
  return out;
}

KernelOpcodeSupport KernelCapabilities::opcode_support() const {
  KernelOpcodeSupport s;
  for (const auto& op : sqe_opcodes) s.sqe_ops.set(op.op, op.supported);
  s.register_op_count = register_op_count;
  s.kernel_release = kernel_release;
  return s;
}

KernelCapabilities probe_kernel(const std::optional<std::string>& iopoll_target) {
  KernelCapabilities caps;
  caps.kernel_release = kernel_release();
  caps.io_uring_disabled = io_uring_disabled_sysctl();
  caps.register_model = register_restriction_model_for(caps.kernel_release.c_str());
  caps.memlock = probe_memlock();

  io_uring_params plain{};
  const int plain_fd = sys::io_uring_setup(4, &plain);
  if (plain_fd < 0) {
    caps.io_uring = FeatureStatus{false, fmt::format("io_uring_setup failed: {}{}", errno_label(-plain_fd),
                                                     -plain_fd == EPERM ? ". " + explain_io_uring_eperm() : "")};
    if (iopoll_target) caps.iopoll = IopollStatus{*iopoll_target, false, "io_uring is unavailable", std::nullopt};
    return caps;
  }
  UniqueFd plain_ring(plain_fd);
  caps.features = plain.features;
  caps.io_uring = FeatureStatus{true, "io_uring_setup works"};

  RingOptions basic;
  basic.sq_entries = 4;
  auto disabled = DisabledRing::create(basic);
  caps.r_disabled = from_result(disabled, "rings start disabled until IORING_REGISTER_ENABLE_RINGS");
  if (disabled) {
    caps.sqe_opcodes = probe_sqe_opcodes(disabled->fd());
  } else {
    caps.sqe_opcodes = probe_sqe_opcodes(plain_ring.get());
  }
  caps.register_op_count = running_kernel_opcode_support().register_op_count;

  RingOptions sqpoll = basic;
  sqpoll.sqpoll = SqPollOptions{};
  caps.sqpoll = from_result(DisabledRing::create(sqpoll), "a kernel thread polls the SQ");
  caps.no_mmap = probe_no_mmap();
  RingOptions no_sqarray = basic;
  no_sqarray.no_sqarray = true;
  caps.no_sqarray = from_result(DisabledRing::create(no_sqarray), "the SQ tail indexes the SQE array directly");
  caps.attach_wq = probe_attach_wq();
  caps.restrictions = probe_restrictions();
  if (iopoll_target) caps.iopoll = probe_iopoll(*iopoll_target);
  return caps;
}

const KernelOpcodeSupport& running_kernel_opcode_support() {
  static std::once_flag once;
  static KernelOpcodeSupport support;
  std::call_once(once, [] {
    support.kernel_release = kernel_release();
    RingOptions basic;
    basic.sq_entries = 1;
    if (auto ring = DisabledRing::create(basic)) {
      for (const auto& op : probe_sqe_opcodes(ring->fd())) support.sqe_ops.set(op.op, op.supported);
    }
    support.register_op_count = probe_register_op_count();
  });
  return support;
}

}  // namespace rf
