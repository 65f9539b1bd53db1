#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace rf::cli {

struct FuzzArgs {
  std::string mode;  // passthrough or mediated (required unless --replay)
  double seconds = 60.0;
  std::optional<std::uint64_t> seed;  // default: from the clock, printed
  std::optional<std::uint32_t> episodes;  // stop after this many
  std::string json_path;
  std::string replay_path;
  std::string version;
};

// `ringfence fuzz`: a hostile guest process against a live sandboxed device, with the VMM
// checking its invariants after every episode. Exit 0: clean; 1: a violation (its program in
// --json); 2: the fuzzer could not run; 3: an episode hung (the watchdog).
int run_fuzz(const FuzzArgs& args);

}  // namespace rf::cli
