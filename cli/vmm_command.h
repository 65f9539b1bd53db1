#pragma once

#include <cstdint>
#include <string>

namespace rf::cli {

struct VmmArgs {
  std::string mode = "both";  // passthrough, mediated or both
  std::string disk;           // empty: a new 1 MiB image in a temporary directory
  std::string guest;          // empty: default_kvm_guest_image()
  std::uint64_t seed = 0x5eed;
  std::uint32_t passes = 1;
  std::uint32_t depth = 16;
  std::uint32_t ram_mib = 64;
  double timeout_s = 600;
  bool log = false;
};

// `ringfence vmm`: the KVM example VMM (vmm-glue/kvm) boots the bare-metal guest on a device of
// each mode asked for, runs the verified workload, checks the disk itself, then boots hostile
// guests (SQEs outside RAM, a forbidden opcode, a write past the disk, a fault, a hang) and a
// last verified run. Exit status 1 on any failure; 2 when /dev/kvm is not usable.
int run_vmm(const VmmArgs& args);

}  // namespace rf::cli
