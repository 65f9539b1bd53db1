// The C API's status codes, per-thread last error and version queries.
#include <string>

#include "capi/capi_internal.h"

namespace rf::capi {
namespace {

struct LastError {
  std::string message;
  const char* fixed = nullptr;  // used instead of `message` when recording it failed
  int sys_errno = 0;
};
thread_local LastError last_error;

const char* fallback_message(rf_status status) {
  switch (status) {
    case RF_E_NO_MEMORY: return "out of memory";
    default: return "an error occurred, and recording its message failed";
  }
}

}  // namespace

rf_status fail(rf_status status, int sys_errno, std::string message) noexcept {
  last_error.sys_errno = sys_errno;
  if (message.empty()) {
    last_error.fixed = fallback_message(status);
  } else {
    last_error.message = std::move(message);  // a move: no allocation
    last_error.fixed = nullptr;
  }
  return status;
}

// Records "<where>: <what>"; if building the message fails, the status's fixed message.
rf_status fail_prefixed(rf_status status, int sys_errno, std::string_view where, std::string_view what) noexcept {
  try {
    return fail(status, sys_errno, fmt::format("{}: {}", where, what));
  } catch (...) {
    return fail(status, sys_errno, std::string());
  }
}

rf_status invalid_argument(const char* function, std::string_view what) noexcept {
  return fail_prefixed(RF_E_INVALID_ARGUMENT, 0, function, what);
}

rf_status fail_with(const Error<GuestMemoryErrc>& e) noexcept {
  const rf_status status = e.code == GuestMemoryErrc::InvalidLayout ? RF_E_INVALID_CONFIG : RF_E_SYSTEM;
  return fail_prefixed(status, e.sys_errno, "guest memory", e.message);
}

rf_status fail_with(const Error<DiskErrc>& e) noexcept {
  rf_status status = RF_E_SYSTEM;
  switch (e.code) {
    case DiskErrc::Open:
    case DiskErrc::LoopDevice: status = RF_E_SYSTEM; break;
    case DiskErrc::Unsupported:
    case DiskErrc::InvalidImage: status = RF_E_INVALID_CONFIG; break;
    case DiskErrc::Locked: status = RF_E_BUSY; break;
  }
  return fail_prefixed(status, e.sys_errno, "disk", e.message);
}

rf_status fail_with(const Error<DeviceErrc>& e) noexcept {
  rf_status status = RF_E_INTERNAL;
  switch (e.code) {
    case DeviceErrc::InvalidConfig: status = RF_E_INVALID_CONFIG; break;
    case DeviceErrc::Ring: status = RF_E_KERNEL; break;
    case DeviceErrc::Eventfd:
    case DeviceErrc::Thread:
    case DeviceErrc::System: status = RF_E_SYSTEM; break;
    case DeviceErrc::WrongState: status = RF_E_WRONG_STATE; break;
    case DeviceErrc::Timeout: status = RF_E_TIMEOUT; break;
    case DeviceErrc::Broken: status = RF_E_BROKEN; break;
  }
  return fail_prefixed(status, e.sys_errno, "device", e.message);
}

}  // namespace rf::capi

extern "C" {

const char* rf_status_name(rf_status status) {
  switch (status) {
    case RF_OK: return "RF_OK";
    case RF_E_INVALID_ARGUMENT: return "RF_E_INVALID_ARGUMENT";
    case RF_E_INVALID_CONFIG: return "RF_E_INVALID_CONFIG";
    case RF_E_POLICY: return "RF_E_POLICY";
    case RF_E_SYSTEM: return "RF_E_SYSTEM";
    case RF_E_KERNEL: return "RF_E_KERNEL";
    case RF_E_WRONG_STATE: return "RF_E_WRONG_STATE";
    case RF_E_TIMEOUT: return "RF_E_TIMEOUT";
    case RF_E_BROKEN: return "RF_E_BROKEN";
    case RF_E_BUSY: return "RF_E_BUSY";
    case RF_E_NO_MEMORY: return "RF_E_NO_MEMORY";
    case RF_E_INTERNAL: return "RF_E_INTERNAL";
  }
  return "RF_E_UNKNOWN";
}

const char* rf_last_error(void) {
  const auto& e = rf::capi::last_error;
  return e.fixed != nullptr ? e.fixed : e.message.c_str();
}

int rf_last_errno(void) { return rf::capi::last_error.sys_errno; }

uint32_t rf_abi_version(void) { return RINGFENCE_ABI_VERSION; }

const char* rf_version_string(void) { return RF_VERSION; }

}  // extern "C"
