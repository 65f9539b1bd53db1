// ScopedPin: pins the calling thread to one CPU for a scope and restores its affinity after, so
// that every row of the bench runs its submitting side (the application thread, or the guest
// process, which inherits the affinity of the thread that starts it) on the same CPU.
#pragma once

#include <pthread.h>
#include <sched.h>

#include <optional>

namespace rf::bench {

class ScopedPin {
 public:
  explicit ScopedPin(std::optional<unsigned> cpu) {
    if (!cpu || ::pthread_getaffinity_np(::pthread_self(), sizeof(saved_), &saved_) != 0) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(*cpu, &set);
    pinned_ = ::pthread_setaffinity_np(::pthread_self(), sizeof(set), &set) == 0;
  }
  ~ScopedPin() {
    if (pinned_) ::pthread_setaffinity_np(::pthread_self(), sizeof(saved_), &saved_);
  }
  ScopedPin(const ScopedPin&) = delete;
  ScopedPin& operator=(const ScopedPin&) = delete;

 private:
  cpu_set_t saved_{};
  bool pinned_ = false;
};

}  // namespace rf::bench
