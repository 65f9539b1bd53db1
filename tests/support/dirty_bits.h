// A dirty log's bits (memory/dirty_log.h) read as the VMM reads them: bit (page % 8) of byte
// (page / 8) for the 4 KiB page of a guest-physical address. For tests.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace rf::test {

inline bool page_marked(std::span<const std::byte> bits, std::uint64_t gpa) {
  const std::uint64_t page = gpa / 4096;
  return page / 8 < bits.size() && (static_cast<unsigned>(bits[page / 8]) & (1u << (page % 8))) != 0;
}

inline bool no_page_marked(std::span<const std::byte> bits) {
  for (const std::byte b : bits) {
    if (b != std::byte{0}) return false;
  }
  return true;
}

}  // namespace rf::test
