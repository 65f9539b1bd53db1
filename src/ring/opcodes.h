// Names and numbers of io_uring SQE opcodes, register opcodes and SQE flags: the kernel ABI
// as ringfence knows it. The running kernel may support fewer (see ring/probe.h) or more;
// an opcode number ringfence has no name for is shown as "op <n>".
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace rf {

// IORING_OP_* (struct io_uring_sqe::opcode).
enum class SqeOpcode : std::uint8_t {
  Nop = 0, Readv = 1, Writev = 2, Fsync = 3, ReadFixed = 4, WriteFixed = 5, PollAdd = 6, PollRemove = 7,
  SyncFileRange = 8, Sendmsg = 9, Recvmsg = 10, Timeout = 11, TimeoutRemove = 12, Accept = 13,
  AsyncCancel = 14, LinkTimeout = 15, Connect = 16, Fallocate = 17, Openat = 18, Close = 19,
  FilesUpdate = 20, Statx = 21, Read = 22, Write = 23, Fadvise = 24, Madvise = 25, Send = 26, Recv = 27,
  Openat2 = 28, EpollCtl = 29, Splice = 30, ProvideBuffers = 31, RemoveBuffers = 32, Tee = 33,
  Shutdown = 34, Renameat = 35, Unlinkat = 36, Mkdirat = 37, Symlinkat = 38, Linkat = 39, MsgRing = 40,
  Fsetxattr = 41, Setxattr = 42, Fgetxattr = 43, Getxattr = 44, Socket = 45, UringCmd = 46, SendZc = 47,
  SendmsgZc = 48, ReadMultishot = 49, Waitid = 50, FutexWait = 51, FutexWake = 52, FutexWaitv = 53,
  FixedFdInstall = 54, Ftruncate = 55, Bind = 56, Listen = 57, RecvZc = 58, EpollWait = 59,
  ReadvFixed = 60, WritevFixed = 61, Pipe = 62, Nop128 = 63, UringCmd128 = 64,
};

// IORING_REGISTER_* (the opcode argument of io_uring_register(2)).
enum class RegisterOpcode : std::uint8_t {
  RegisterBuffers = 0, UnregisterBuffers = 1, RegisterFiles = 2, UnregisterFiles = 3, RegisterEventfd = 4,
  UnregisterEventfd = 5, RegisterFilesUpdate = 6, RegisterEventfdAsync = 7, RegisterProbe = 8,
  RegisterPersonality = 9, UnregisterPersonality = 10, RegisterRestrictions = 11, RegisterEnableRings = 12,
  RegisterFiles2 = 13, RegisterFilesUpdate2 = 14, RegisterBuffers2 = 15, RegisterBuffersUpdate = 16,
  RegisterIowqAff = 17, UnregisterIowqAff = 18, RegisterIowqMaxWorkers = 19, RegisterRingFds = 20,
  UnregisterRingFds = 21, RegisterPbufRing = 22, UnregisterPbufRing = 23, RegisterSyncCancel = 24,
  RegisterFileAllocRange = 25, RegisterPbufStatus = 26, RegisterNapi = 27, UnregisterNapi = 28,
  RegisterClock = 29, RegisterCloneBuffers = 30, RegisterSendMsgRing = 31, RegisterZcrxIfq = 32,
  RegisterResizeRings = 33, RegisterMemRegion = 34, RegisterQuery = 35, RegisterZcrxCtrl = 36,
  RegisterBpfFilter = 37,
};

// IOSQE_* bits of struct io_uring_sqe::flags.
namespace sqe_flag {
inline constexpr std::uint8_t kFixedFile = 1U << 0;
inline constexpr std::uint8_t kIoDrain = 1U << 1;
inline constexpr std::uint8_t kIoLink = 1U << 2;
inline constexpr std::uint8_t kIoHardlink = 1U << 3;
inline constexpr std::uint8_t kAsync = 1U << 4;
inline constexpr std::uint8_t kBufferSelect = 1U << 5;
inline constexpr std::uint8_t kCqeSkipSuccess = 1U << 6;
inline constexpr std::uint8_t kAllKnown = 0x7f;
}  // namespace sqe_flag

struct OpcodeName {
  std::uint8_t value;
  std::string_view name;  // without the IORING_OP_ / IORING_ prefix: "READ_FIXED", "REGISTER_BUFFERS"
};

struct SqeFlagName {
  std::uint8_t bit;  // the flag's mask
  std::string_view name;  // without the IOSQE_ prefix: "FIXED_FILE"
};

std::span<const OpcodeName> known_sqe_opcodes();
std::span<const OpcodeName> known_register_opcodes();
std::span<const SqeFlagName> known_sqe_flags();

std::optional<std::string_view> sqe_opcode_name(unsigned op);
std::optional<std::string_view> register_opcode_name(unsigned op);
std::optional<std::uint8_t> sqe_opcode_from_name(std::string_view name);
std::optional<std::uint8_t> register_opcode_from_name(std::string_view name);
std::optional<std::uint8_t> sqe_flag_from_name(std::string_view name);

// A name for display: the known name, or "op <n>" / "register op <n>".
std::string sqe_opcode_label(unsigned op);
std::string register_opcode_label(unsigned op);
std::string sqe_opcode_label(SqeOpcode op);
std::string register_opcode_label(RegisterOpcode op);
// "FIXED_FILE|IO_LINK", "none" for 0, unknown bits as "bit7".
std::string sqe_flags_label(std::uint8_t flags);

constexpr std::uint8_t to_u8(SqeOpcode op) { return static_cast<std::uint8_t>(op); }
constexpr std::uint8_t to_u8(RegisterOpcode op) { return static_cast<std::uint8_t>(op); }

}  // namespace rf
