#include "ring/opcodes.h"

#include <algorithm>
#include <array>

#include <fmt/format.h>

#include "sys/uapi_compat.h"

namespace rf {

namespace {

constexpr std::array kSqeOpcodes = std::to_array<OpcodeName>({
    {0, "NOP"}, {1, "READV"}, {2, "WRITEV"}, {3, "FSYNC"}, {4, "READ_FIXED"}, {5, "WRITE_FIXED"},
    {6, "POLL_ADD"}, {7, "POLL_REMOVE"}, {8, "SYNC_FILE_RANGE"}, {9, "SENDMSG"}, {10, "RECVMSG"},
    {11, "TIMEOUT"}, {12, "TIMEOUT_REMOVE"}, {13, "ACCEPT"}, {14, "ASYNC_CANCEL"}, {15, "LINK_TIMEOUT"},
    {16, "CONNECT"}, {17, "FALLOCATE"}, {18, "OPENAT"}, {19, "CLOSE"}, {20, "FILES_UPDATE"}, {21, "STATX"},
    {22, "READ"}, {23, "WRITE"}, {24, "FADVISE"}, {25, "MADVISE"}, {26, "SEND"}, {27, "RECV"},
    {28, "OPENAT2"}, {29, "EPOLL_CTL"}, {30, "SPLICE"}, {31, "PROVIDE_BUFFERS"}, {32, "REMOVE_BUFFERS"},
    {33, "TEE"}, {34, "SHUTDOWN"}, {35, "RENAMEAT"}, {36, "UNLINKAT"}, {37, "MKDIRAT"}, {38, "SYMLINKAT"},
    {39, "LINKAT"}, {40, "MSG_RING"}, {41, "FSETXATTR"}, {42, "SETXATTR"}, {43, "FGETXATTR"},
    {44, "GETXATTR"}, {45, "SOCKET"}, {46, "URING_CMD"}, {47, "SEND_ZC"}, {48, "SENDMSG_ZC"},
    {49, "READ_MULTISHOT"}, {50, "WAITID"}, {51, "FUTEX_WAIT"}, {52, "FUTEX_WAKE"}, {53, "FUTEX_WAITV"},
    {54, "FIXED_FD_INSTALL"}, {55, "FTRUNCATE"}, {56, "BIND"}, {57, "LISTEN"}, {58, "RECV_ZC"},
    {59, "EPOLL_WAIT"}, {60, "READV_FIXED"}, {61, "WRITEV_FIXED"}, {62, "PIPE"}, {63, "NOP128"},
    {64, "URING_CMD128"},
});

constexpr std::array kRegisterOpcodes = std::to_array<OpcodeName>({
    {0, "REGISTER_BUFFERS"}, {1, "UNREGISTER_BUFFERS"}, {2, "REGISTER_FILES"}, {3, "UNREGISTER_FILES"},
    {4, "REGISTER_EVENTFD"}, {5, "UNREGISTER_EVENTFD"}, {6, "REGISTER_FILES_UPDATE"},
    {7, "REGISTER_EVENTFD_ASYNC"}, {8, "REGISTER_PROBE"}, {9, "REGISTER_PERSONALITY"},
    {10, "UNREGISTER_PERSONALITY"}, {11, "REGISTER_RESTRICTIONS"}, {12, "REGISTER_ENABLE_RINGS"},
    {13, "REGISTER_FILES2"}, {14, "REGISTER_FILES_UPDATE2"}, {15, "REGISTER_BUFFERS2"},
    {16, "REGISTER_BUFFERS_UPDATE"}, {17, "REGISTER_IOWQ_AFF"}, {18, "UNREGISTER_IOWQ_AFF"},
    {19, "REGISTER_IOWQ_MAX_WORKERS"}, {20, "REGISTER_RING_FDS"}, {21, "UNREGISTER_RING_FDS"},
    {22, "REGISTER_PBUF_RING"}, {23, "UNREGISTER_PBUF_RING"}, {24, "REGISTER_SYNC_CANCEL"},
    {25, "REGISTER_FILE_ALLOC_RANGE"}, {26, "REGISTER_PBUF_STATUS"}, {27, "REGISTER_NAPI"},
    {28, "UNREGISTER_NAPI"}, {29, "REGISTER_CLOCK"}, {30, "REGISTER_CLONE_BUFFERS"},
    {31, "REGISTER_SEND_MSG_RING"}, {32, "REGISTER_ZCRX_IFQ"}, {33, "REGISTER_RESIZE_RINGS"},
    {34, "REGISTER_MEM_REGION"}, {35, "REGISTER_QUERY"}, {36, "REGISTER_ZCRX_CTRL"},
    {37, "REGISTER_BPF_FILTER"},
});

constexpr std::array kSqeFlags = std::to_array<SqeFlagName>({
    {sqe_flag::kFixedFile, "FIXED_FILE"},
    {sqe_flag::kIoDrain, "IO_DRAIN"},
    {sqe_flag::kIoLink, "IO_LINK"},
    {sqe_flag::kIoHardlink, "IO_HARDLINK"},
    {sqe_flag::kAsync, "ASYNC"},
    {sqe_flag::kBufferSelect, "BUFFER_SELECT"},
    {sqe_flag::kCqeSkipSuccess, "CQE_SKIP_SUCCESS"},
});

// The tables are indexed by value; keep them dense and in order.
constexpr bool dense(std::span<const OpcodeName> table) {
  for (std::size_t i = 0; i < table.size(); ++i) {
    if (table[i].value != i) return false;
  }
  return true;
}
static_assert(dense(kSqeOpcodes));
static_assert(dense(kRegisterOpcodes));

// Cross-check against the system uapi header for the opcodes it knows.
static_assert(IORING_OP_READ_FIXED == 4 && IORING_OP_WRITE_FIXED == 5 && IORING_OP_FSYNC == 3);
static_assert(IORING_OP_SENDMSG_ZC == 48);
static_assert(IORING_REGISTER_RESTRICTIONS == 11 && IORING_REGISTER_ENABLE_RINGS == 12);
static_assert(IORING_REGISTER_FILE_ALLOC_RANGE == 25);
static_assert(IOSQE_FIXED_FILE == sqe_flag::kFixedFile && IOSQE_IO_DRAIN == sqe_flag::kIoDrain &&
              IOSQE_IO_LINK == sqe_flag::kIoLink && IOSQE_IO_HARDLINK == sqe_flag::kIoHardlink &&
              IOSQE_ASYNC == sqe_flag::kAsync && IOSQE_BUFFER_SELECT == sqe_flag::kBufferSelect &&
              IOSQE_CQE_SKIP_SUCCESS == sqe_flag::kCqeSkipSuccess);

std::optional<std::string_view> name_in(std::span<const OpcodeName> table, unsigned value) {
  if (value >= table.size()) return std::nullopt;
  return table[value].name;
}

std::optional<std::uint8_t> value_in(std::span<const OpcodeName> table, std::string_view name) {
  const auto it = std::find_if(table.begin(), table.end(), [&](const OpcodeName& e) { return e.name == name; });
  if (it == table.end()) return std::nullopt;
  return it->value;
}

}  // namespace

std::span<const OpcodeName> known_sqe_opcodes() { return kSqeOpcodes; }
std::span<const OpcodeName> known_register_opcodes() { return kRegisterOpcodes; }
std::span<const SqeFlagName> known_sqe_flags() { return kSqeFlags; }

std::optional<std::string_view> sqe_opcode_name(unsigned op) { return name_in(kSqeOpcodes, op); }
std::optional<std::string_view> register_opcode_name(unsigned op) { return name_in(kRegisterOpcodes, op); }
std::optional<std::uint8_t> sqe_opcode_from_name(std::string_view name) { return value_in(kSqeOpcodes, name); }
std::optional<std::uint8_t> register_opcode_from_name(std::string_view name) {
  return value_in(kRegisterOpcodes, name);
}

std::optional<std::uint8_t> sqe_flag_from_name(std::string_view name) {
  for (const auto& f : kSqeFlags) {
    if (f.name == name) return f.bit;
  }
  return std::nullopt;
}

std::string sqe_opcode_label(unsigned op) {
  if (auto name = sqe_opcode_name(op)) return std::string(*name);
  return fmt::format("op {}", op);
}

std::string register_opcode_label(unsigned op) {
  if (auto name = register_opcode_name(op)) return std::string(*name);
  return fmt::format("register op {}", op);
}

std::string sqe_opcode_label(SqeOpcode op) { return sqe_opcode_label(to_u8(op)); }
std::string register_opcode_label(RegisterOpcode op) { return register_opcode_label(to_u8(op)); }

std::string sqe_flags_label(std::uint8_t flags) {
  if (flags == 0) return "none";
  std::string out;
  for (unsigned bit = 0; bit < 8; ++bit) {
    const auto mask = static_cast<std::uint8_t>(1U << bit);
    if ((flags & mask) == 0) continue;
    if (!out.empty()) out += '|';
    const auto it = std::find_if(kSqeFlags.begin(), kSqeFlags.end(), [&](const SqeFlagName& f) { return f.bit == mask; });
    out += it != kSqeFlags.end() ? std::string(it->name) : fmt::format("bit{}", bit);
  }
  return out;
}

}  // namespace rf
