// What every libFuzzer target here shares: a check that reports a broken invariant and aborts
// (libFuzzer then saves the input as crash-<sha1>; the replay build names the file), and a
// reader that turns the fuzzer's bytes into values.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>

// A broken invariant is a finding, so it must stop the run in every build type (never assert()).
#define RF_FUZZ_CHECK(condition, what)                                                                \
  do {                                                                                                \
    if (!(condition)) {                                                                               \
      std::fprintf(stderr, "fuzz invariant broken at %s:%d: %s (%s)\n", __FILE__, __LINE__, what, #condition); \
      std::abort();                                                                                   \
    }                                                                                                 \
  } while (0)

namespace rf::fuzz {

// The models compute sums of 64-bit values exactly, so they need no checked arithmetic of
// their own (which is what they check). __extension__: -Wpedantic knows it is not ISO C++.
__extension__ typedef unsigned __int128 u128;

// Reads little pieces of the input front to back; past the end every value is zero, so a short
// input is still a complete (if dull) case.
class ByteReader {
 public:
  ByteReader(const std::uint8_t* data, std::size_t size) : bytes_(data, size) {}

  bool empty() const { return bytes_.empty(); }
  std::size_t left() const { return bytes_.size(); }

  template <typename T>
  T take() {
    T value{};
    const std::size_t n = sizeof(T) < bytes_.size() ? sizeof(T) : bytes_.size();
    if (n != 0) std::memcpy(&value, bytes_.data(), n);
    bytes_ = bytes_.subspan(n);
    return value;
  }
  std::uint8_t byte() { return take<std::uint8_t>(); }
  bool flag() { return (byte() & 1) != 0; }
  // A value in [0, bound), bound > 0.
  std::uint32_t below(std::uint32_t bound) { return take<std::uint32_t>() % bound; }
  // The rest of the input.
  std::span<const std::uint8_t> rest() {
    const auto all = bytes_;
    bytes_ = {};
    return all;
  }

 private:
  std::span<const std::uint8_t> bytes_;
};

}  // namespace rf::fuzz
