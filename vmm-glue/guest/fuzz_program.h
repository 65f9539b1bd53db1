// The program a hostile fuzz guest runs (`ringfence fuzz`): the VMM writes it into guest RAM,
// the guest copies it once and acts it out against its device's rings, action by action. The
// VMM generates the actions (fuzz/live/program.h) and can therefore replay any run exactly;
// the guest only interprets. Freestanding: this header is shared by the VMM and the guest.
//
// Layout at the program's guest-physical address: a FuzzProgramHeader, then `count`
// FuzzActions, each 80 bytes, in native byte order.
#pragma once

#include <cstdint>

#include "abi/ring_entries.h"

namespace rf::guest {

inline constexpr std::uint64_t kFuzzProgramMagic = 0x4d41'5247'5a55'4652ULL;  // "RFUZGRAM"
inline constexpr std::uint32_t kFuzzMaxActions = 8192;
inline constexpr std::uint32_t kPutWaitsForRoom = 1;
// How long a PutSqe waits for room (spins) before the guest gives up and ends its program.
inline constexpr std::uint64_t kFuzzRoomSpins = 1u << 21;

enum class FuzzOp : std::uint32_t {
  PutSqe = 1,       // write `sqe` into the slot at the guest's own tail (and the index array), tail + 1;
                    // with `field` = kPutWaitsForRoom, first wait until the SQ head says the slot is free
  Publish = 2,      // store the guest's tail into the SQ tail; ring the doorbell if the device sleeps
  SetSqTail = 3,    // store `value` into the SQ tail and adopt it as the guest's tail (a tail jump)
  Scribble = 4,     // store the low 32 bits of `value` into the ring word `field` (a FuzzField)
  ScribbleSqe = 5,  // overwrite SQ slot `value` (masked) with `sqe`, published or not
  SetIndex = 6,     // index array: entry `field` (masked) = low 32 bits of `value` (ignored without one)
  Reap = 7,         // take up to `value` CQEs, trusting whatever the CQ tail says (bounded by the CQ size)
  Kick = 8,         // ring the doorbell
  Pause = 9,        // spin `value` iterations (at most 1,000,000)
};

// The ring words a Scribble can hit: the guest's own and the device's.
enum class FuzzField : std::uint32_t {
  SqHead = 0,    // written by the device
  SqTail = 1,
  SqFlags = 2,   // written by the device
  SqDropped = 3,  // written by the device
  CqHead = 4,
  CqTail = 5,    // written by the device
  CqFlags = 6,
  CqOverflow = 7,  // written by the device
  Count = 8,
};

struct FuzzAction {
  std::uint32_t op = 0;  // a FuzzOp
  std::uint32_t field = 0;
  std::uint64_t value = 0;
  abi::GuestSqe sqe{};
};
static_assert(sizeof(FuzzAction) == 80);

struct FuzzProgramHeader {
  std::uint64_t magic = kFuzzProgramMagic;
  std::uint32_t count = 0;
  std::uint32_t reserved = 0;
};
static_assert(sizeof(FuzzProgramHeader) == 16);

inline constexpr std::uint64_t fuzz_program_bytes(std::uint32_t actions) {
  return sizeof(FuzzProgramHeader) + std::uint64_t{actions} * sizeof(FuzzAction);
}

enum class FuzzStatus : std::uint32_t {
  Ok = 0,
  NoProgram,   // the program is outside guest memory, has no magic or too many actions
  BadAction,   // an action with an unknown op or field (the VMM wrote something we do not know)
  Stalled,     // a PutSqe waited kFuzzRoomSpins for room that never came (the device stopped taking SQEs)
};

// What the guest saw: untrusted, for display only (the VMM checks the device itself).
struct FuzzGuestReport {
  FuzzStatus status = FuzzStatus::Ok;
  std::uint32_t bad_action = 0;
  std::uint64_t actions = 0;
  std::uint64_t sqes_put = 0;
  std::uint64_t cqes_seen = 0;
  std::uint64_t kicks = 0;
  // Completion results the guest read, by class.
  std::uint64_t res_ok = 0, res_eacces = 0, res_efault = 0, res_einval = 0, res_ebadf = 0, res_enospc_enxio = 0,
                res_other = 0;
};

}  // namespace rf::guest
