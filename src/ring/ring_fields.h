// Access to a field of the ring memory the kernel shares with us, by the byte offset that
// io_uring_setup(2) reported. Private to the queue implementations.
#pragma once

#include <cstddef>
#include <cstdint>

namespace rf {

inline std::uint32_t* ring_field(std::byte* ring_memory, std::uint32_t offset) {
  // SAFETY: offsets come from io_uring_setup(2) and lie inside the ring memory, which holds
  // naturally aligned 32-bit fields at these offsets and stays mapped while the ring lives.
  return reinterpret_cast<std::uint32_t*>(ring_memory + offset);
}

}  // namespace rf
