// The numeric value of a pointer, for address arithmetic, alignment checks and kernel ABI
// fields (SQE addresses, iovecs, NO_MMAP user_addr). One place for the conversion.
#pragma once

#include <cstdint>

namespace rf {

inline std::uintptr_t address_of(const void* p) {
  // SAFETY: converting a pointer to an integer is always defined; the value is compared,
  // aligned or handed to the kernel, never turned back into a pointer here.
  return reinterpret_cast<std::uintptr_t>(p);
}

}  // namespace rf
