// What each SQE opcode can reach, for judging policies. In passthrough mode the kernel is the
// only guard, and it checks just three things: the opcode whitelist, that files are fixed
// files, and that READ_FIXED/WRITE_FIXED buffers lie inside a registered buffer. An opcode
// that dereferences any other address, touches descriptors, paths, sockets or other rings,
// or resizes the disk gives the guest a power over the VMM process or the host.
#pragma once

#include <cstdint>
#include <string_view>

namespace rf::policy {

enum class OpcodeRisk {
  BlockIo,           // reads/writes/flushes a registered file through registered buffers, or does nothing
  UncheckedAddress,  // the kernel dereferences a host address it does not check against registered buffers
  Descriptors,       // creates, installs, closes or replaces descriptors or fixed-file slots
  OutsideDisks,      // acts on paths, sockets, pipes, processes or other rings: not the registered disks
  ResizesDisk,       // changes a registered file's size or allocation at any offset
  Unknown,           // ringfence does not know this opcode
};

struct OpcodeSafety {
  OpcodeRisk risk = OpcodeRisk::Unknown;
  std::string_view does;  // what the opcode does, in a few words
  std::string_view why;   // for risky opcodes: what it would let a guest do
};

const OpcodeSafety& opcode_safety(std::uint8_t op);

std::string_view risk_name(OpcodeRisk risk);

}  // namespace rf::policy
