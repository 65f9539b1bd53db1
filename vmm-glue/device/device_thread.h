// The threads that issue a guest's requests to a kernel ring (the mediator, the passthrough
// device thread) run with no capabilities: the kernel checks some SQE fields against the
// credentials of the thread that submits them (real-time ioprio needs CAP_SYS_NICE or
// CAP_SYS_ADMIN), and io-wq workers the thread starts inherit its credentials. Capabilities
// are per thread, so the rest of the VMM keeps its own.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <thread>

#include "device/device_error.h"
#include "util/result.h"

namespace rf {

// Starts a thread that pins itself to `cpu` (if given), drops every capability, and only then
// runs `body`. Returns once the thread has done both, or the reason it could not, with the
// errno of the call that failed (the thread has then ended without running `body`). `what`
// names the thread in messages ("the mediator thread").
Result<std::thread, DeviceError> start_device_thread(std::function<void()> body, std::optional<unsigned> cpu,
                                                     const char* what);

// Whether this process may run a thread on `cpu` (it is in the calling thread's affinity mask):
// a refusal names the CPUs it may use.
Result<void, DeviceError> check_device_cpu(unsigned cpu);

}  // namespace rf
