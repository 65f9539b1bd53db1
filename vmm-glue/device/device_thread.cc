#include "device/device_thread.h"

#include <pthread.h>
#include <sched.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <system_error>

#include <fmt/format.h>

#include "host/thread_capabilities.h"

namespace rf {

namespace {

DeviceError thread_error(const char* what, int err, std::string_view step) {
  return DeviceError{DeviceErrc::Thread, err, fmt::format("{}: {}", what, step)};
}

Result<void, DeviceError> prepare_this_thread(std::optional<unsigned> cpu, const char* what) {
  if (cpu) {
    if (*cpu >= CPU_SETSIZE) return unexpected(thread_error(what, EINVAL, fmt::format("CPU {} is past the largest CPU number ({})", *cpu, CPU_SETSIZE - 1)));
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(*cpu, &set);
    if (const int rc = ::pthread_setaffinity_np(::pthread_self(), sizeof(set), &set); rc != 0) {
      return unexpected(thread_error(what, rc, fmt::format("pinning to CPU {}: {}", *cpu, std::strerror(rc))));
    }
  }
  if (auto dropped = drop_thread_capabilities_except(0); !dropped) {
    return unexpected(thread_error(what, dropped.error().sys_errno, "dropping its capabilities: " + dropped.error().message));
  }
  return {};
}

}  // namespace

Result<void, DeviceError> check_device_cpu(unsigned cpu) {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (::sched_getaffinity(0, sizeof(allowed), &allowed) != 0) {
    const int err = errno;
    return unexpected(DeviceError{DeviceErrc::System, err, fmt::format("reading this process's CPU affinity: {}", std::strerror(err))});
  }
  if (cpu < CPU_SETSIZE && CPU_ISSET(cpu, &allowed)) return {};
  std::string list;
  for (unsigned i = 0; i < CPU_SETSIZE; ++i) {
    if (CPU_ISSET(i, &allowed)) list += (list.empty() ? "" : ",") + std::to_string(i);
  }
  return unexpected(DeviceError{DeviceErrc::InvalidConfig, 0,
                                fmt::format("CPU {} is not one this process may run on (it may use CPUs {}): pin to one of those",
                                            cpu, list)});
}

Result<std::thread, DeviceError> start_device_thread(std::function<void()> body, std::optional<unsigned> cpu,
                                                     const char* what) {
  // Shared, so that neither side outlives what it touches.
  struct Handshake {
    std::mutex mutex;
    std::condition_variable cv;
    std::optional<Result<void, DeviceError>> result;
  };
  auto handshake = std::make_shared<Handshake>();
  std::thread thread;
  try {
    thread = std::thread([handshake, cpu, what, body = std::move(body)] {
      auto result = prepare_this_thread(cpu, what);
      const bool ok = result.has_value();
      {
        std::lock_guard lock(handshake->mutex);
        handshake->result = std::move(result);
      }
      handshake->cv.notify_one();
      if (ok) body();
    });
  } catch (const std::system_error& e) {
    return unexpected(thread_error(what, e.code().value(), fmt::format("starting it: {}", e.what())));
  }
  std::unique_lock lock(handshake->mutex);
  handshake->cv.wait(lock, [&] { return handshake->result.has_value(); });
  if (!*handshake->result) {
    auto error = std::move(*handshake->result).error();
    lock.unlock();
    thread.join();
    return unexpected(std::move(error));
  }
  return thread;
}

}  // namespace rf
