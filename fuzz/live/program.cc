#include "fuzz/live/program.h"

#include <algorithm>
#include <array>
#include <limits>
#include <random>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "ring/opcodes.h"

namespace rf::fuzz {

namespace {

using guest::FuzzAction;
using guest::FuzzField;
using guest::FuzzOp;
using Rng = std::mt19937_64;

constexpr std::uint64_t kU64Max = std::numeric_limits<std::uint64_t>::max();
constexpr std::uint8_t kFixedFile = abi::kSqeFixedFile;
constexpr std::uint8_t kOpWritev = 2, kOpWrite = 23, kOpWritevFixed = 61;

// Opcodes a block-device attacker tries first: vectored and plain I/O (raw host addresses),
// file changes (fallocate, ftruncate), descriptors (openat, close), splice, buffer rings,
// passthrough commands. The policy must deny them all.
constexpr std::array<std::uint8_t, 16> kInterestingOpcodes = {1, 2, 17, 18, 19, 22, 23, 30, 31, 33, 35, 36, 40, 46, 55, 61};

std::uint64_t pick(Rng& rng, std::uint64_t n) { return n == 0 ? 0 : std::uniform_int_distribution<std::uint64_t>(0, n - 1)(rng); }
bool chance(Rng& rng, unsigned percent) { return pick(rng, 100) < percent; }
template <typename T, std::size_t N>
T one_of(Rng& rng, const std::array<T, N>& values) {
  return values[pick(rng, N)];
}

std::uint64_t align_down(std::uint64_t v, std::uint64_t a) { return v - v % a; }

struct Generator {
  const FuzzGeometry& g;
  Rng rng;
  std::uint64_t next_user_data;
  std::vector<ActionSpec> out;
  std::uint32_t put_field = 0;  // kPutWaitsForRoom in an episode that keeps the SQ protocol
  bool linked_skips = true;     // false: no SQE has both CQE_SKIP_SUCCESS and a link flag

  ActionSpec make_sqe() {
    ActionSpec s;
    abi::GuestSqe& q = s.action.sqe;
    q = abi::GuestSqe{};
    const std::uint64_t roll = pick(rng, 100);
    q.opcode = roll < 45   ? abi::kOpReadFixed
               : roll < 70 ? abi::kOpWriteFixed
               : roll < 75 ? abi::kOpFsync
               : roll < 80 ? abi::kOpNop
               : roll < 90 ? one_of(rng, kInterestingOpcodes)
                           : static_cast<std::uint8_t>(pick(rng, 256));
    const std::uint64_t f = pick(rng, 100);
    q.flags = f < 80 ? kFixedFile : f < 90 ? static_cast<std::uint8_t>(kFixedFile | (1u << pick(rng, 8))) : static_cast<std::uint8_t>(pick(rng, 256));
    fill_fd(s);
    q.off = make_offset();
    q.len = make_length();
    fill_addr(s);
    q.buf_index = chance(rng, 85) ? 0 : static_cast<std::uint16_t>(one_of(rng, std::array<std::uint64_t, 4>{1, g.window_count, 0xffff, pick(rng, 65536)}));
    if (chance(rng, 15)) q.op_flags = static_cast<std::uint32_t>(rng());
    if (chance(rng, 10)) q.ioprio = static_cast<std::uint16_t>(rng());
    if (chance(rng, 5)) q.personality = static_cast<std::uint16_t>(rng());
    if (chance(rng, 5)) q.splice_fd_in = static_cast<std::int32_t>(rng());
    if (chance(rng, 5)) q.addr3 = rng();
    if (chance(rng, 2)) q.pad = rng();
    q.user_data = next_user_data++;
    return s;
  }

  void fill_fd(ActionSpec& s) {
    std::int32_t& fd = s.action.sqe.fd;
    const std::uint64_t roll = pick(rng, 100);
    if (roll < 75) {
      fd = 0;
    } else if (roll < 80) {
      fd = static_cast<std::int32_t>(1 + pick(rng, 70));
    } else if (roll < 85) {
      fd = one_of(rng, std::array<std::int32_t, 7>{static_cast<std::int32_t>(g.disk_count), 63, 64, 65535,
                                                   std::numeric_limits<std::int32_t>::max(), -1,
                                                   std::numeric_limits<std::int32_t>::min()});
    } else if (roll < 95) {
      // The decoy: a file the VMM holds open but never registered. Without FIXED_FILE the fd
      // field is a descriptor number in the VMM.
      s.fd_anchor = FdAnchor::Decoy;
      fd = 0;
      if (chance(rng, 50)) s.action.sqe.flags = static_cast<std::uint8_t>(s.action.sqe.flags & ~kFixedFile);
    } else {
      fd = static_cast<std::int32_t>(pick(rng, 3));
      s.action.sqe.flags = static_cast<std::uint8_t>(s.action.sqe.flags & ~kFixedFile);
    }
  }

  std::uint64_t make_offset() {
    const std::uint64_t bs = g.block_bytes, size = g.disk_bytes;
    const std::uint64_t roll = pick(rng, 100);
    if (roll < 50) return align_down(pick(rng, size), bs);
    if (roll < 65) return one_of(rng, std::array<std::uint64_t, 6>{0, size - bs, size, size + bs, size - 1, 1});
    if (roll < 75) return one_of(rng, std::array<std::uint64_t, 4>{(1ull << 63) - bs, kU64Max - bs + 1, kU64Max, 1ull << 62});
    if (roll < 85) return pick(rng, size) | 1;
    return rng();
  }

  std::uint32_t make_length() {
    const std::uint32_t bs = g.block_bytes;
    const std::uint64_t roll = pick(rng, 100);
    if (roll < 50) return bs;
    if (roll < 70) return bs * static_cast<std::uint32_t>(1 + pick(rng, 16));
    if (roll < 80) return one_of(rng, std::array<std::uint32_t, 5>{0, 1, 511, bs - 1, bs + 1});
    if (roll < 90) {
      return one_of(rng, std::array<std::uint32_t, 4>{g.max_transfer, g.max_transfer + bs, 1u << 31,
                                                      std::numeric_limits<std::uint32_t>::max()});
    }
    return static_cast<std::uint32_t>(rng());
  }

  std::uint64_t gpa_in(const Zone& z, std::uint64_t len) {
    const std::uint64_t room = z.bytes > len ? z.bytes - len : 0;
    return z.gpa + align_down(pick(rng, room + 1), g.block_bytes);
  }

  void fill_addr(ActionSpec& s) {
    abi::GuestSqe& q = s.action.sqe;
    const std::uint64_t len = std::min<std::uint64_t>(q.len, g.data.bytes);
    const std::uint64_t roll = pick(rng, 100);
    s.addr_anchor = AddrAnchor::Gpa;
    if (roll < 55) {
      q.addr = gpa_in(g.data, len);
    } else if (roll < 63) {
      q.addr = g.device_window.gpa + pick(rng, g.device_window.bytes);  // the rings and the descriptor
    } else if (roll < 68) {
      q.addr = gpa_in(g.program, len);
    } else if (roll < 75) {
      const std::uint64_t end = g.ram_bytes, bs = g.block_bytes;
      q.addr = one_of(rng, std::array<std::uint64_t, 7>{0, end - bs, end - 1, end, end + bs, kU64Max - bs + 1, g.report_page});
    } else if (roll < 85) {
      s.addr_anchor = one_of(rng, std::array<AddrAnchor, 3>{AddrAnchor::CanaryBelow, AddrAnchor::CanaryAbove, AddrAnchor::Canary});
      q.addr = s.addr_anchor == AddrAnchor::CanaryBelow ? 4096 - std::min<std::uint64_t>(4096, len) : 0;
    } else if (roll < 95) {
      s.addr_anchor = AddrAnchor::Raw;
      q.addr = rng();
    } else {
      s.addr_anchor = AddrAnchor::Raw;
      q.addr = one_of(rng, std::array<std::uint64_t, 3>{0, 1, kU64Max});
    }
    keep_reads_off_the_sq(s);
  }

  // Passthrough: the shadow-disk check models what the kernel can write from the SQEs this
  // program puts in the SQ. A read into the rings (SQEs, index array, SQ tail) or into the
  // program would turn disk contents into SQEs or index jumps the model cannot know, so reads
  // go to the data zone instead; writes from those places stay. (Mediated mode sees every
  // accepted write and needs no model: there, reads into the rings are fair game.)
  void keep_reads_off_the_sq(ActionSpec& s) {
    abi::GuestSqe& q = s.action.sqe;
    if (g.mode != abi::Mode::Passthrough || s.addr_anchor != AddrAnchor::Gpa || writes_disk(q.opcode)) return;
    const std::uint64_t len = std::max<std::uint64_t>(q.len, 1);
    const auto overlaps = [&](const Zone& z) { return q.addr < z.end() && (q.addr >= kU64Max - len || q.addr + len > z.gpa); };
    if (overlaps(g.rings) || overlaps(g.program)) q.addr = gpa_in(g.data, std::min<std::uint64_t>(q.len, g.data.bytes));
  }

  void tame_flags(ActionSpec& s) const {
    if (!linked_skips && skips_linked_cqes(s.action.sqe.flags)) s.action.sqe.flags = static_cast<std::uint8_t>(s.action.sqe.flags & ~sqe_flag::kCqeSkipSuccess);
  }

  void put(const ActionSpec& s) {
    ActionSpec a = s;
    tame_flags(a);
    a.action.op = static_cast<std::uint32_t>(FuzzOp::PutSqe);
    a.action.field = put_field;
    out.push_back(a);
  }
  void simple(FuzzOp op, std::uint64_t value = 0, std::uint32_t field = 0) {
    ActionSpec a;
    a.action.op = static_cast<std::uint32_t>(op);
    a.action.value = value;
    a.action.field = field;
    out.push_back(a);
  }

  // A batch the size of at most half the SQ, published, then a breath and maybe a reap.
  void publish_batch(std::vector<ActionSpec>& pending, bool reaps) {
    if (pending.empty()) return;
    for (const ActionSpec& s : pending) put(s);
    pending.clear();
    simple(FuzzOp::Publish);
    simple(FuzzOp::Pause, 500 + pick(rng, 3000));
    if (reaps) simple(FuzzOp::Reap, pick(rng, 2 * g.cq_entries));
  }
};

}  // namespace

bool skips_linked_cqes(std::uint8_t flags) {
  return (flags & sqe_flag::kCqeSkipSuccess) != 0 && (flags & (sqe_flag::kIoLink | sqe_flag::kIoHardlink)) != 0;
}

bool writes_disk(std::uint8_t opcode) {
  return opcode == kOpWritev || opcode == abi::kOpWriteFixed || opcode == kOpWrite || opcode == kOpWritevFixed;
}

std::uint64_t disk_write_reach(std::uint8_t opcode, std::uint32_t len) {
  return opcode == kOpWritev || opcode == kOpWritevFixed ? kU64Max : len;
}

FuzzProgram generate_program(const FuzzGeometry& geometry, std::uint64_t seed, std::uint32_t episode, std::uint32_t budget) {
  Generator gen{geometry, Rng(seed ^ (0x9e3779b97f4a7c15ULL * (std::uint64_t{episode} + 1))),
                (std::uint64_t{episode} << 32) | 1, {}, 0, true};
  Rng& rng = gen.rng;
  const std::uint32_t batch_max = std::max<std::uint32_t>(1, geometry.sq_entries / 2);
  const std::uint32_t limit = std::min<std::uint32_t>(budget + 1024, guest::kFuzzMaxActions);
  // An episode's temper. A quarter never reap. Half are "chaos" episodes: they jump and
  // scribble the guest's own SQ indices, rewrite SQEs the device may be reading and corrupt the
  // index array; the other half keep the SQ protocol (every SQE goes into a free slot and is
  // published whole), so that the kernel reads exactly the SQEs the program wrote and the
  // passthrough shadow-disk check can be exact (FuzzProgram::keeps_sq_protocol).
  const bool reaps = !chance(rng, 25);
  const bool chaos = chance(rng, 50);
  gen.put_field = chaos ? 0 : guest::kPutWaitsForRoom;
  // Invalid index-array entries make the kernel drop SQEs and count them in sq_dropped, which a
  // scribble would hide: an episode does one or the other (the accounting check relies on it).
  const bool invalid_indexes = chaos && geometry.has_index_array && chance(rng, 30);
  // Half the episodes leave out SQEs that skip linked CQEs, so that their accounting is exact.
  gen.linked_skips = chance(rng, 50);

  // Every opcode and every flag value once, with otherwise plausible fields.
  std::vector<ActionSpec> sweep;
  for (unsigned v = 0; v < 256; ++v) {
    for (const bool opcode_sweep : {true, false}) {
      ActionSpec s = gen.make_sqe();
      s.fd_anchor = FdAnchor::Raw;
      s.addr_anchor = AddrAnchor::Gpa;
      abi::GuestSqe& q = s.action.sqe;
      q.opcode = opcode_sweep ? static_cast<std::uint8_t>(v) : abi::kOpReadFixed;
      q.flags = opcode_sweep ? kFixedFile : static_cast<std::uint8_t>(v);
      q.fd = 0;
      q.off = align_down(pick(rng, geometry.disk_bytes), geometry.block_bytes);
      q.len = geometry.block_bytes;
      q.addr = gen.gpa_in(geometry.data, q.len);
      q.buf_index = 0;
      gen.keep_reads_off_the_sq(s);
      sweep.push_back(s);
    }
  }
  std::shuffle(sweep.begin(), sweep.end(), rng);

  // Index jumps break a mediated device for good, so they come in the last third of a chaos
  // episode, after the device has had work to do.
  const auto late_chaos = [&] { return chaos && gen.out.size() > limit * 2 / 3; };
  std::vector<ActionSpec> pending;
  std::size_t next_sweep = 0;
  while (gen.out.size() + pending.size() < limit - 16) {
    const std::uint64_t roll = pick(rng, 100);
    if (roll < 62) {
      const bool from_sweep = next_sweep < sweep.size() && chance(rng, 35);
      pending.push_back(from_sweep ? sweep[next_sweep++] : gen.make_sqe());
      if (pending.size() >= 1 + pick(rng, batch_max)) gen.publish_batch(pending, reaps);
    } else if (roll < 75) {
      gen.publish_batch(pending, reaps);
      if (reaps) gen.simple(FuzzOp::Reap, pick(rng, 2 * geometry.cq_entries));
    } else if (roll < 83) {
      // Scribble a ring word; the guest's own indices only in a jumping episode, and never
      // sq_dropped while invalid index entries are about.
      std::vector<FuzzField> fields = {FuzzField::SqFlags, FuzzField::CqFlags, FuzzField::CqOverflow};
      if (!invalid_indexes) fields.push_back(FuzzField::SqDropped);
      if (late_chaos()) {
        fields.push_back(FuzzField::CqTail);  // the guest then reaps garbage and moves its head too far
        fields.push_back(FuzzField::SqHead);
        fields.push_back(FuzzField::SqTail);
        fields.push_back(FuzzField::CqHead);
      }
      const FuzzField field = fields[pick(rng, fields.size())];
      const std::uint64_t value = one_of(rng, std::array<std::uint64_t, 6>{0, 1, 0xffffffff, 0x80000000, rng(), pick(rng, 4)});
      gen.simple(FuzzOp::Scribble, value, static_cast<std::uint32_t>(field));
    } else if (roll < 88) {
      if (!chaos) continue;
      // Change an SQE in the SQ, whether or not the device took it yet.
      ActionSpec s = gen.make_sqe();
      s.action.op = static_cast<std::uint32_t>(FuzzOp::ScribbleSqe);
      gen.tame_flags(s);
      s.action.value = pick(rng, geometry.sq_entries);
      gen.out.push_back(s);
    } else if (roll < 91) {
      if (chaos && geometry.has_index_array) {
        const std::uint64_t slot = invalid_indexes && chance(rng, 50) ? geometry.sq_entries + pick(rng, 1u << 20) : pick(rng, geometry.sq_entries);
        gen.simple(FuzzOp::SetIndex, slot, static_cast<std::uint32_t>(pick(rng, geometry.sq_entries)));
      }
    } else if (roll < 93) {
      if (late_chaos()) {
        const std::uint64_t value = one_of(rng, std::array<std::uint64_t, 4>{0, 0x80000000, 0xffffffff, rng()});
        gen.simple(FuzzOp::SetSqTail, value);
      }
    } else if (roll < 97) {
      gen.simple(FuzzOp::Kick);
    } else {
      gen.simple(FuzzOp::Pause, pick(rng, 20000));
    }
  }
  gen.publish_batch(pending, reaps);
  // Whatever of the sweep is left, then the last word: everything published.
  for (; next_sweep < sweep.size() && gen.out.size() + 3 < guest::kFuzzMaxActions; ++next_sweep) {
    gen.put(sweep[next_sweep]);
    if (next_sweep % batch_max == batch_max - 1) {
      gen.simple(FuzzOp::Publish);
      gen.simple(FuzzOp::Pause, 2000);
      if (reaps) gen.simple(FuzzOp::Reap, geometry.cq_entries);
    }
  }
  gen.simple(FuzzOp::Publish);
  FuzzProgram program;
  program.seed = seed;
  program.episode = episode;
  program.actions = std::move(gen.out);
  return program;
}

std::vector<guest::FuzzAction> resolve(const FuzzProgram& program, const Anchors& anchors) {
  std::vector<guest::FuzzAction> out;
  out.reserve(program.actions.size());
  for (const ActionSpec& s : program.actions) {
    guest::FuzzAction a = s.action;
    switch (s.addr_anchor) {
      case AddrAnchor::Raw: break;
      case AddrAnchor::Gpa: a.sqe.addr += anchors.gpa_bias; break;  // wraps, as the guest's own sum would
      case AddrAnchor::CanaryBelow: a.sqe.addr += anchors.canary_below; break;
      case AddrAnchor::CanaryAbove: a.sqe.addr += anchors.canary_above; break;
      case AddrAnchor::Canary: a.sqe.addr += anchors.canary; break;
    }
    if (s.fd_anchor == FdAnchor::Decoy) {  // wraps like the kernel's s32 would, without signed overflow
      a.sqe.fd = static_cast<std::int32_t>(static_cast<std::uint32_t>(a.sqe.fd) + static_cast<std::uint32_t>(anchors.decoy_fd));
    }
    out.push_back(a);
  }
  return out;
}

bool keeps_sq_protocol(const FuzzProgram& program) {
  return std::all_of(program.actions.begin(), program.actions.end(), [](const ActionSpec& s) {
    switch (static_cast<FuzzOp>(s.action.op)) {
      case FuzzOp::PutSqe: return s.action.field == guest::kPutWaitsForRoom;
      case FuzzOp::SetSqTail:
      case FuzzOp::ScribbleSqe:
      case FuzzOp::SetIndex: return false;
      case FuzzOp::Scribble:
        return s.action.field != static_cast<std::uint32_t>(FuzzField::SqHead) &&
               s.action.field != static_cast<std::uint32_t>(FuzzField::SqTail);
      default: return true;
    }
  });
}

DropAccounting drop_accounting(const FuzzProgram& program, std::uint32_t sq_entries) {
  bool invalid = false, scribbled = false;
  for (const ActionSpec& s : program.actions) {
    const auto op = static_cast<FuzzOp>(s.action.op);
    if ((op == FuzzOp::PutSqe || op == FuzzOp::ScribbleSqe) && skips_linked_cqes(s.action.sqe.flags)) {
      return DropAccounting::Unknown;
    }
    if (op == FuzzOp::SetIndex && (s.action.value & 0xffffffffu) >= sq_entries) invalid = true;
    if (op == FuzzOp::Scribble && s.action.field == static_cast<std::uint32_t>(FuzzField::SqDropped)) scribbled = true;
  }
  if (!invalid) return DropAccounting::None;
  return scribbled ? DropAccounting::Unknown : DropAccounting::Counted;
}

// --- JSON ---

namespace {

constexpr std::array<std::pair<FuzzOp, std::string_view>, 9> kOpNames = {{
    {FuzzOp::PutSqe, "put_sqe"},
    {FuzzOp::Publish, "publish"},
    {FuzzOp::SetSqTail, "set_sq_tail"},
    {FuzzOp::Scribble, "scribble"},
    {FuzzOp::ScribbleSqe, "scribble_sqe"},
    {FuzzOp::SetIndex, "set_index"},
    {FuzzOp::Reap, "reap"},
    {FuzzOp::Kick, "kick"},
    {FuzzOp::Pause, "pause"},
}};
constexpr std::array<std::string_view, 8> kFieldNames = {"sq_head", "sq_tail", "sq_flags", "sq_dropped",
                                                         "cq_head", "cq_tail", "cq_flags", "cq_overflow"};
constexpr std::array<std::string_view, 5> kAddrAnchorNames = {"raw", "gpa", "canary_below", "canary_above", "canary"};
constexpr std::array<std::string_view, 2> kFdAnchorNames = {"raw", "decoy"};

template <std::size_t N>
std::optional<std::size_t> index_of(const std::array<std::string_view, N>& names, const std::string& name) {
  for (std::size_t i = 0; i < N; ++i) {
    if (names[i] == name) return i;
  }
  return std::nullopt;
}

bool has_sqe(FuzzOp op) { return op == FuzzOp::PutSqe || op == FuzzOp::ScribbleSqe; }

}  // namespace

std::string_view fuzz_op_name(FuzzOp op) {
  for (const auto& [o, name] : kOpNames) {
    if (o == op) return name;
  }
  return "unknown";
}

std::string_view fuzz_field_name(FuzzField field) {
  const auto i = static_cast<std::size_t>(field);
  return i < kFieldNames.size() ? kFieldNames[i] : "unknown";
}

nlohmann::json program_to_json(const FuzzProgram& program) {
  nlohmann::json actions = nlohmann::json::array();
  for (const ActionSpec& s : program.actions) {
    const auto op = static_cast<FuzzOp>(s.action.op);
    nlohmann::json a = {{"op", fuzz_op_name(op)}};
    if (op == FuzzOp::PutSqe) {
      a["waits_for_room"] = s.action.field == guest::kPutWaitsForRoom;
    } else if (op == FuzzOp::Scribble || op == FuzzOp::SetIndex) {
      a["field"] = op == FuzzOp::Scribble ? nlohmann::json(fuzz_field_name(static_cast<FuzzField>(s.action.field)))
                                          : nlohmann::json(s.action.field);
    }
    if (op != FuzzOp::PutSqe && op != FuzzOp::Publish && op != FuzzOp::Kick) a["value"] = s.action.value;
    if (has_sqe(op)) {
      const abi::GuestSqe& q = s.action.sqe;
      a["sqe"] = {{"opcode", q.opcode},   {"flags", q.flags},         {"ioprio", q.ioprio},
                  {"fd", q.fd},           {"off", q.off},             {"addr", q.addr},
                  {"len", q.len},         {"op_flags", q.op_flags},   {"user_data", q.user_data},
                  {"buf_index", q.buf_index}, {"personality", q.personality}, {"splice_fd_in", q.splice_fd_in},
                  {"addr3", q.addr3},     {"pad", q.pad}};
      a["addr_anchor"] = kAddrAnchorNames[static_cast<std::size_t>(s.addr_anchor)];
      a["fd_anchor"] = kFdAnchorNames[static_cast<std::size_t>(s.fd_anchor)];
    }
    actions.push_back(std::move(a));
  }
  return {{"seed", program.seed}, {"episode", program.episode}, {"actions", std::move(actions)}};
}

Result<FuzzProgram, std::string> program_from_json(const nlohmann::json& json) {
  // The file may come from anywhere: check every field's presence and type, never throw.
  const auto fail = [](std::size_t i, std::string_view what) {
    return unexpected(fmt::format("action {}: {}", i, what));
  };
  if (!json.is_object() || !json.contains("actions") || !json["actions"].is_array()) {
    return unexpected(std::string("the program has no \"actions\" array"));
  }
  FuzzProgram program;
  if (json.contains("seed") && json["seed"].is_number_unsigned()) program.seed = json["seed"].get<std::uint64_t>();
  if (json.contains("episode") && json["episode"].is_number_unsigned()) program.episode = json["episode"].get<std::uint32_t>();
  const auto& actions = json["actions"];
  if (actions.size() > guest::kFuzzMaxActions) return unexpected(fmt::format("more than {} actions", guest::kFuzzMaxActions));
  const auto number = [](const nlohmann::json& obj, const char* key, auto& out) {
    using T = std::remove_reference_t<decltype(out)>;
    if (!obj.contains(key) || !obj[key].is_number_integer()) return false;
    if constexpr (std::is_signed_v<T>) {
      const auto v = obj[key].get<std::int64_t>();
      if (v < std::numeric_limits<T>::min() || v > std::numeric_limits<T>::max()) return false;
      out = static_cast<T>(v);
    } else {
      if (obj[key].is_number_unsigned() == false && obj[key].get<std::int64_t>() < 0) return false;
      const auto v = obj[key].get<std::uint64_t>();
      if (v > std::numeric_limits<T>::max()) return false;
      out = static_cast<T>(v);
    }
    return true;
  };
  for (std::size_t i = 0; i < actions.size(); ++i) {
    const auto& a = actions[i];
    if (!a.is_object() || !a.contains("op") || !a["op"].is_string()) return fail(i, "no \"op\"");
    ActionSpec s;
    const std::string op_name = a["op"].get<std::string>();
    const auto op = std::find_if(kOpNames.begin(), kOpNames.end(), [&](const auto& p) { return p.second == op_name; });
    if (op == kOpNames.end()) return fail(i, fmt::format("unknown op \"{}\"", op_name));
    s.action.op = static_cast<std::uint32_t>(op->first);
    if (op->first == FuzzOp::Scribble) {
      if (!a.contains("field") || !a["field"].is_string()) return fail(i, "a scribble needs a \"field\" name");
      const auto field = index_of(kFieldNames, a["field"].get<std::string>());
      if (!field) return fail(i, "unknown field");
      s.action.field = static_cast<std::uint32_t>(*field);
    } else if (op->first == FuzzOp::PutSqe) {
      if (a.contains("waits_for_room") && !a["waits_for_room"].is_boolean()) return fail(i, "\"waits_for_room\" is not true or false");
      s.action.field = a.value("waits_for_room", false) ? guest::kPutWaitsForRoom : 0;
    } else if (op->first == FuzzOp::SetIndex && !number(a, "field", s.action.field)) {
      return fail(i, "set_index needs a numeric \"field\"");
    }
    if (a.contains("value") && !number(a, "value", s.action.value)) return fail(i, "\"value\" is not a 64-bit unsigned number");
    if (has_sqe(op->first)) {
      if (!a.contains("sqe") || !a["sqe"].is_object()) return fail(i, "no \"sqe\" object");
      const auto& q = a["sqe"];
      abi::GuestSqe& sqe = s.action.sqe;
      if (!number(q, "opcode", sqe.opcode) || !number(q, "flags", sqe.flags) || !number(q, "ioprio", sqe.ioprio) ||
          !number(q, "fd", sqe.fd) || !number(q, "off", sqe.off) || !number(q, "addr", sqe.addr) ||
          !number(q, "len", sqe.len) || !number(q, "op_flags", sqe.op_flags) || !number(q, "user_data", sqe.user_data) ||
          !number(q, "buf_index", sqe.buf_index) || !number(q, "personality", sqe.personality) ||
          !number(q, "splice_fd_in", sqe.splice_fd_in) || !number(q, "addr3", sqe.addr3) || !number(q, "pad", sqe.pad)) {
        return fail(i, "an SQE field is missing or out of range");
      }
      const auto addr = a.contains("addr_anchor") && a["addr_anchor"].is_string()
                            ? index_of(kAddrAnchorNames, a["addr_anchor"].get<std::string>()) : std::nullopt;
      const auto fd = a.contains("fd_anchor") && a["fd_anchor"].is_string()
                          ? index_of(kFdAnchorNames, a["fd_anchor"].get<std::string>()) : std::nullopt;
      if (!addr || !fd) return fail(i, "unknown or missing \"addr_anchor\" / \"fd_anchor\"");
      s.addr_anchor = static_cast<AddrAnchor>(*addr);
      s.fd_anchor = static_cast<FdAnchor>(*fd);
    }
    program.actions.push_back(s);
  }
  return program;
}

}  // namespace rf::fuzz
