#pragma once

#include <cstdint>

namespace rf::cli {

struct DemoArgs {
  std::uint64_t seed = 0x5eed;
  std::uint32_t passes = 4;  // 4 x (16384 writes + 16384 reads) + 4 flushes on the 64 MiB disk
  std::uint32_t depth = 32;
  bool poll = false;
};

// `ringfence demo`: a 64 MiB disk image in a temporary directory, 256 MiB of guest RAM, and a
// sandboxed guest process driving its own restricted ring in passthrough mode through the
// verified workload; then the security checks. Exit status 1 on any mismatch or failed check.
int run_demo(const DemoArgs& args);

}  // namespace rf::cli
