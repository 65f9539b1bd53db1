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

#include "util/result.h"

namespace rf {

// Starts a thread that pins itself to `cpu` (if given), drops every capability, and only then
// runs `body`. Returns once the thread has done both, or the reason it could not (the thread has
// then ended without running `body`).
Result<std::thread, std::string> start_device_thread(std::function<void()> body, std::optional<unsigned> cpu);

}  // namespace rf
