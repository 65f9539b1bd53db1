// What the C API's files share: the handles behind the opaque types of ringfence.h, the
// per-thread last error, the exception barrier every entry point runs in, and the
// struct_size rule for extensible structs.
#pragma once

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <type_traits>

#include <fmt/format.h>

#include "device/guest_device.h"
#include "disk/disk.h"
#include "mediated/mediated_device.h"
#include "memory/guest_memory_builder.h"
#include "passthrough/passthrough_device.h"
#include "restrictions/policy.h"
#include "ring/restriction.h"
#include "ringfence.h"

struct rf_memory {
  explicit rf_memory(rf::GuestMemoryMap m) : map(std::move(m)) {}
  const rf::GuestMemory& memory() const { return *map; }
  rf::GuestMemoryMap map;  // immutable: devices on it share it, and keep it alive
  std::atomic<std::size_t> devices{0};  // live rf_device objects on this memory
};

struct rf_disk {
  explicit rf_disk(rf::Disk d) : disk(std::move(d)), description(disk.describe()) {}
  rf::Disk disk;
  std::string description;
};

struct rf_policy {
  rf::policy::Policy policy;
  rf::RestrictionSet restrictions;  // compiled once, copied into each device
  std::string warnings;
};

struct rf_device {
  rf_device(rf_memory& m, std::unique_ptr<rf::GuestDevice> d) : memory(m), device(std::move(d)) {
    memory.devices.fetch_add(1, std::memory_order_acq_rel);
  }
  ~rf_device() {
    device.reset();  // stops it: the kernel is done with guest RAM before the count drops
    memory.devices.fetch_sub(1, std::memory_order_acq_rel);
  }
  rf_device(const rf_device&) = delete;
  rf_device& operator=(const rf_device&) = delete;

  rf_memory& memory;
  std::unique_ptr<rf::GuestDevice> device;
  std::optional<rf_stop_report> stop_report;  // what the first rf_device_stop did, for later calls
};

namespace rf::capi {

// Records the failure for rf_last_error()/rf_last_errno() on this thread and returns `status`.
rf_status fail(rf_status status, int sys_errno, std::string message) noexcept;
rf_status invalid_argument(const char* function, std::string_view what) noexcept;

// The status for each library error, with its message recorded.
rf_status fail_with(const Error<GuestMemoryErrc>& e) noexcept;
rf_status fail_with(const Error<DiskErrc>& e) noexcept;
rf_status fail_with(const Error<DeviceErrc>& e) noexcept;

// Runs an entry point's body: an exception (a library bug, or std::bad_alloc) becomes a status,
// never an unwind into C.
template <class Body>
rf_status guarded(const char* function, Body&& body) noexcept {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    return fail(RF_E_NO_MEMORY, ENOMEM, std::string());  // fail() falls back to a fixed message
  } catch (const std::exception& e) {
    try {
      return fail(RF_E_INTERNAL, 0, fmt::format("{}: unexpected exception: {}", function, e.what()));
    } catch (...) {
      return fail(RF_E_INTERNAL, 0, std::string());
    }
  } catch (...) {
    return fail(RF_E_INTERNAL, 0, std::string());
  }
}

// Larger than any struct of this API will grow to (openat2 draws the same line for its struct).
inline constexpr std::uint32_t kMaxStructSize = 4096;

// Each extensible struct's size in the first version of ABI 1 (RF_*_SIZE_VER1): no program was
// built with a smaller one, so a smaller struct_size is a caller's bug, not an older caller.
template <class T>
constexpr std::uint32_t struct_size_ver1();
template <>
constexpr std::uint32_t struct_size_ver1<rf_device_config>() { return RF_DEVICE_CONFIG_SIZE_VER1; }
template <>
constexpr std::uint32_t struct_size_ver1<rf_stop_report>() { return RF_STOP_REPORT_SIZE_VER1; }
template <>
constexpr std::uint32_t struct_size_ver1<rf_device_counters>() { return RF_DEVICE_COUNTERS_SIZE_VER1; }

// The caller's struct_size, checked: at least the first version's size, at most 4096. For the
// structs the library reads and those it fills in alike.
template <class T>
rf_status read_struct_size(const char* function, const T* in, std::uint32_t& size) noexcept {
  static_assert(std::is_trivially_copyable_v<T> && offsetof(T, struct_size) == 0);
  static_assert(struct_size_ver1<T>() <= sizeof(T));
  if (in == nullptr) return invalid_argument(function, "the struct pointer is NULL");
  // SAFETY: every extensible struct starts with a uint32_t struct_size; the caller owns at
  // least that much memory at `in`.
  std::memcpy(&size, in, sizeof size);
  if (size < struct_size_ver1<T>()) {
    try {
      return invalid_argument(function, fmt::format("struct_size is {}, below the struct's first version ({} bytes): set it "
                                                    "to sizeof the struct", size, struct_size_ver1<T>()));
    } catch (...) {
      return invalid_argument(function, "struct_size is below the struct's first version: set it to sizeof the struct");
    }
  }
  if (size > kMaxStructSize) {  // an uninitialised struct_size; reading or writing that far could fault
    return invalid_argument(function, "struct_size is over 4096 bytes; set it to sizeof the struct");
  }
  return RF_OK;
}

// struct_size: reads the caller's struct into `out` (zeroed first). A smaller struct (an older
// caller, from the first version on) leaves the fields it lacks zero; a larger one (a newer
// caller) is accepted only if every byte this library does not know is zero.
template <class T>
rf_status read_sized(const char* function, const T* in, T& out) noexcept {
  out = T{};
  std::uint32_t size = 0;
  if (const rf_status s = read_struct_size(function, in, size); s != RF_OK) return s;
  // SAFETY: the caller owns `size` bytes at `in` (its struct_size, checked above).
  const auto* bytes = reinterpret_cast<const unsigned char*>(in);
  for (std::size_t i = sizeof(T); i < size; ++i) {
    if (bytes[i] != 0) {
      try {
        return invalid_argument(function, fmt::format("the struct is {} bytes and sets a field past byte {}, which "
                                                      "this library (ABI {}) does not know: upgrade the library",
                                                      size, sizeof(T), RINGFENCE_ABI_VERSION));
      } catch (...) {
        return invalid_argument(function, "the struct sets fields this library does not know");
      }
    }
  }
  std::memcpy(&out, in, size < sizeof(T) ? size : sizeof(T));
  out.struct_size = static_cast<std::uint32_t>(sizeof(T));
  return RF_OK;
}

// struct_size: writes as much of `value` as the caller's struct (out->struct_size) holds,
// leaving its struct_size as it was (what the caller has beyond this library's struct is left
// alone).
template <class T>
rf_status write_sized(const char* function, const T& value, T* out) noexcept {
  std::uint32_t size = 0;
  if (const rf_status s = read_struct_size(function, out, size); s != RF_OK) return s;
  const std::size_t n = size < sizeof(T) ? size : sizeof(T);
  // SAFETY: the caller says it owns `size` bytes at `out`; we write at most that many, and keep
  // its struct_size.
  std::memcpy(reinterpret_cast<unsigned char*>(out) + sizeof(std::uint32_t),
              reinterpret_cast<const unsigned char*>(&value) + sizeof(std::uint32_t), n - sizeof(std::uint32_t));
  return RF_OK;
}

}  // namespace rf::capi
