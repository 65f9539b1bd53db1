#include "device/device_thread.h"

#include <pthread.h>
#include <sched.h>

#include <cstring>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <system_error>

#include <fmt/format.h>

#include "sys/thread_capabilities.h"

namespace rf {

namespace {

Result<void, std::string> prepare_this_thread(std::optional<unsigned> cpu) {
  if (cpu) {
    if (*cpu >= CPU_SETSIZE) return unexpected(fmt::format("CPU {} is past the largest CPU number ({})", *cpu, CPU_SETSIZE - 1));
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(*cpu, &set);
    if (const int rc = ::pthread_setaffinity_np(::pthread_self(), sizeof(set), &set); rc != 0) {
      return unexpected(fmt::format("pinning to CPU {}: {}", *cpu, std::strerror(rc)));
    }
  }
  if (auto dropped = sys::drop_thread_capabilities_except(0); !dropped) {
    return unexpected("dropping its capabilities: " + dropped.error());
  }
  return {};
}

}  // namespace

Result<std::thread, std::string> start_device_thread(std::function<void()> body, std::optional<unsigned> cpu) {
  // Shared, so that neither side outlives what it touches.
  struct Handshake {
    std::mutex mutex;
    std::condition_variable cv;
    std::optional<Result<void, std::string>> result;
  };
  auto handshake = std::make_shared<Handshake>();
  std::thread thread;
  try {
    thread = std::thread([handshake, cpu, body = std::move(body)] {
      auto result = prepare_this_thread(cpu);
      const bool ok = result.has_value();
      {
        std::lock_guard lock(handshake->mutex);
        handshake->result = std::move(result);
      }
      handshake->cv.notify_one();
      if (ok) body();
    });
  } catch (const std::system_error& e) {
    return unexpected(fmt::format("starting the thread: {}", e.what()));
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
