// Handoff: a value the owner of a device thread hands to that thread while it runs, waiting until
// the thread has taken it. For what must not change under the thread in the middle of its work:
// a new dirty log (the VMM frees the old one once the device says it switched, so the thread must
// have stopped marking it).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>

namespace rf {

template <typename T>
class Handoff {
 public:
  // The owner: `wake` makes the thread look soon. True once the thread took `value`, false after
  // `timeout` (it then takes it when it next looks).
  bool give(T value, const std::function<void()>& wake, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    pending_ = std::move(value);
    const std::uint64_t given = ++given_;
    changed_.store(true, std::memory_order_release);
    wake();
    return taken_cv_.wait_for(lock, timeout, [&] { return taken_ >= given; });
  }
  // The thread, between units of work: the value given since it last looked, if any.
  std::optional<T> take() {
    if (!changed_.load(std::memory_order_acquire)) return std::nullopt;
    std::optional<T> value;
    {
      std::lock_guard lock(mutex_);
      changed_.store(false, std::memory_order_relaxed);
      value = std::exchange(pending_, std::nullopt);
      taken_ = given_;
    }
    taken_cv_.notify_all();
    return value;
  }

 private:
  std::mutex mutex_;
  std::condition_variable taken_cv_;
  std::optional<T> pending_;           // guarded
  std::uint64_t given_ = 0, taken_ = 0;  // guarded
  std::atomic<bool> changed_{false};
};

}  // namespace rf
