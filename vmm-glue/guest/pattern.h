// The data the verified workload writes: every 8-byte word of every block is a function of
// (seed, pass, block, word), so the guest can check what it reads back and the VMM can check
// the disk image afterwards without trusting anything the guest reports. Also the generator
// the guest workloads draw block orders and offsets from.
#pragma once

#include <cstdint>

namespace rf::guest {

constexpr std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// A fast generator for block orders and offsets (xorshift64; the state must not be 0).
struct Xorshift {
  std::uint64_t state;
  constexpr std::uint64_t next() {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  }
};

constexpr std::uint64_t pattern_word(std::uint64_t seed, std::uint32_t pass, std::uint64_t block,
                                     std::uint64_t word) {
  return splitmix64(splitmix64(seed ^ (std::uint64_t{pass} << 40)) ^ splitmix64(block) ^ (word * 0x2545f4914f6cdd1dULL));
}

}  // namespace rf::guest
