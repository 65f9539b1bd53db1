// libFuzzer target: the mediator's SQE validator (validate_guest_sqe, kernel_sqe) on any
// 64 bytes a guest can write, under policies the input chooses, against a model of the eight
// rules written from sqe_validator.h.
//
// The input is a policy (3 bytes: which of five opcodes it allows, its allowed and required
// flags) and then one SQE, byte for byte as the guest wrote it. The model applies the rules in
// the documented order with 128-bit arithmetic and a linear scan of the regions; validator and
// model must agree on whether the SQE passes, and if not on the rule that refused it. For an
// SQE that passes, the kernel SQE built from it must point at exactly the host bytes of the
// guest span, inside the fixed buffer it names, on the disk it named, within the disk.
#include <array>
#include <cstdint>
#include <cstring>
#include <optional>

#include "fuzz_check.h"
#include "mediated/sqe_validator.h"
#include "memory/guest_memory_builder.h"
#include "util/address.h"
#include "util/mmap_region.h"

namespace {

using namespace rf;
using fuzz::u128;

constexpr std::uint64_t kPiecePages = 8;  // fixed-buffer pieces: boundaries inside regions
constexpr std::uint32_t kMaxTransfer = 64 * 1024;

// Guest RAM: two adjacent writable regions (a span across them is refused) and, after a gap, a
// read-only one (never a fixed buffer).
struct Machine {
  std::uint64_t page = page_size();
  std::array<RegionLayout, 3> layout{{{GuestAddress{0}, 16 * page, false},
                                      {GuestAddress{16 * page}, 16 * page, false},
                                      {GuestAddress{64 * page}, 4 * page, true}}};
  std::array<DiskLimits, 3> disks{{{1u << 20, 512, false}, {64u << 10, 4096, true}, {4096, 512, false}}};
  GuestMemoryMap memory;

  Machine() {
    auto created = GuestMemoryBuilder::create(layout, MemoryBacking::Anonymous, kPiecePages * page);
    RF_FUZZ_CHECK(created.has_value(), "the fuzz target's guest memory and its buffer plan are made");
    memory = std::move(*created);
  }
};

const Machine& machine() {
  static const Machine m;
  return m;
}

constexpr std::array<SqeOpcode, 5> kPolicyOps = {SqeOpcode::ReadFixed, SqeOpcode::WriteFixed, SqeOpcode::Fsync,
                                                 SqeOpcode::Read, SqeOpcode::Nop};

struct ModelVerdict {
  std::optional<RefusalRule> refused;
  std::size_t region = 0;  // for an accepted read or write
};

ModelVerdict model(const abi::GuestSqe& sqe, const RestrictionSet& policy, const Machine& m) {
  const unsigned op = sqe.opcode;
  const bool implemented = op == abi::kOpReadFixed || op == abi::kOpWriteFixed || op == abi::kOpFsync;
  if (!implemented || !policy.allows(static_cast<SqeOpcode>(op))) return {RefusalRule::Opcode};
  const unsigned required = policy.required_flags();
  const unsigned permitted = policy.allowed_flags() | required;
  if ((sqe.flags & required) != required || (sqe.flags & ~permitted) != 0) return {RefusalRule::Flags};
  if ((sqe.flags & abi::kSqeFixedFile) == 0) return {RefusalRule::Flags};
  if (sqe.fd < 0 || sqe.fd >= static_cast<std::int32_t>(m.disks.size())) return {RefusalRule::FileIndex};
  if (op == abi::kOpFsync) return {};
  const DiskLimits& disk = m.disks[static_cast<std::size_t>(sqe.fd)];
  const bool disk_write = op == abi::kOpWriteFixed;
  if (disk_write && disk.read_only) return {RefusalRule::ReadOnly};
  if (u128{sqe.off} + sqe.len > disk.size_bytes) return {RefusalRule::Range};
  if (sqe.len == 0 || sqe.len > kMaxTransfer) return {RefusalRule::Length};
  if (sqe.off % disk.logical_block_size != 0 || sqe.len % disk.logical_block_size != 0) return {RefusalRule::Alignment};
  // Inside one writable region, and one fixed-buffer piece of it.
  for (std::size_t i = 0; i < m.layout.size(); ++i) {
    const RegionLayout& r = m.layout[i];
    const u128 start = sqe.addr, end = u128{sqe.addr} + sqe.len;
    if (start < r.base.value() || end > u128{r.base.value()} + r.bytes) continue;
    const std::uint64_t offset = sqe.addr - r.base.value();
    const std::uint64_t piece = kPiecePages * m.page;
    if (r.read_only || offset / piece != (offset + sqe.len - 1) / piece) return {RefusalRule::Memory};
    return {std::nullopt, i};
  }
  return {RefusalRule::Memory};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const Machine& m = machine();
  fuzz::ByteReader in(data, size);
  RestrictionSet policy;
  const std::uint8_t ops = in.byte();
  for (std::size_t i = 0; i < kPolicyOps.size(); ++i) {
    if ((ops >> i) & 1) policy.allow(kPolicyOps[i]);
  }
  policy.allow_flags(in.byte());
  policy.require_flags(in.byte());
  // GUEST-CONTROLLED: the rest is the SQE exactly as a guest would leave it in its ring.
  abi::GuestSqe sqe{};
  const auto bytes = in.rest();
  std::memcpy(&sqe, bytes.data(), std::min(bytes.size(), sizeof(sqe)));

  const ValidationContext context{&policy, m.disks, &*m.memory, kMaxTransfer};
  const auto got = validate_guest_sqe(sqe, context);
  const ModelVerdict want = model(sqe, policy, m);
  RF_FUZZ_CHECK(got.has_value() == !want.refused, "the validator accepts exactly what the rules accept");
  if (!got) {
    RF_FUZZ_CHECK(got.error() == *want.refused, "the first rule that fails decides");
    RF_FUZZ_CHECK(refusal_errno(got.error()) < 0, "a refusal completes with a negative errno");
    return 0;
  }

  const Sqe k = kernel_sqe(*got);
  RF_FUZZ_CHECK(k.opcode == static_cast<SqeOpcode>(sqe.opcode), "the kernel SQE has the guest's opcode");
  RF_FUZZ_CHECK(k.flags == abi::kSqeFixedFile, "the kernel SQE uses a fixed file and no other flag");
  RF_FUZZ_CHECK(k.fd == sqe.fd, "the kernel SQE names the guest's disk");
  RF_FUZZ_CHECK(k.ioprio == 0 && k.op_flags == 0, "no unvalidated guest field reaches the kernel");
  if (k.opcode == SqeOpcode::Fsync) {
    RF_FUZZ_CHECK(k.addr == 0 && k.len == 0 && k.off == 0, "an FSYNC carries no guest range");
    return 0;
  }
  const GuestRegion& region = m.memory->regions()[want.region];
  const std::byte* host = region.host + (sqe.addr - region.base.value());
  RF_FUZZ_CHECK(k.addr == address_of(host), "the kernel SQE points at the guest span's host bytes");
  RF_FUZZ_CHECK(k.len == sqe.len && k.off == sqe.off, "length and offset are the validated ones");
  const auto& pieces = m.memory->buffer_plan().pieces();
  bool inside_named_buffer = false;
  for (const BufferPiece& p : pieces) {
    if (p.index.value == k.buf_index) {
      inside_named_buffer = k.addr >= p.host_base && u128{k.addr} + k.len <= u128{p.host_base} + p.len;
    }
  }
  RF_FUZZ_CHECK(inside_named_buffer, "the span lies inside the fixed buffer the kernel SQE names");
  return 0;
}
