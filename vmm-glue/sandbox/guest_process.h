// GuestProcess: starting the process guest (ringfence-guest) and reaping it.
//
// The child inherits exactly three descriptors, at fixed numbers (guest RAM memfd on 3, the
// doorbell on 4, the notification on 5; see guest/process_report.h), plus /dev/null on 0 and
// 1 and the VMM's stderr on 2 for set-up errors; it closes 0-3 itself before it installs its
// seccomp filter. It gets an empty environment, and PR_SET_PDEATHSIG kills it if the VMM dies.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "guest/process_report.h"
#include "memory/guest_memory.h"
#include "util/result.h"
#include "util/unique_fd.h"

namespace rf {

enum class GuestProcessErrc { Spawn, Wait, Timeout };
using GuestProcessError = Error<GuestProcessErrc>;

struct GuestLaunch {
  std::string binary;  // path to ringfence-guest
  const GuestMemory* memory = nullptr;  // Memfd-backed
  GuestAddress descriptor;
  GuestAddress report;  // page-aligned guest RAM the guest may overwrite with its ProcessReport
  int kick_fd = -1;
  int notify_fd = -1;
  std::vector<std::string> scenario_args;  // --scenario, --seed, --scratch-gpa, ...
};

struct GuestExitStatus {
  bool exited = false;  // true: exit code; false: killed by `signal`
  int code = 0;
  int signal = 0;
  std::string describe() const;  // "exited 0 (ok)", "killed by SIGSYS (seccomp)"
};

class GuestProcess {
 public:
  static Result<GuestProcess, GuestProcessError> spawn(const GuestLaunch& launch);

  GuestProcess(GuestProcess&& other) noexcept;
  GuestProcess& operator=(GuestProcess&&) = delete;
  GuestProcess(const GuestProcess&) = delete;
  // A guest still running is killed and reaped: no zombie outlives its handle.
  ~GuestProcess();

  pid_t pid() const { return pid_; }
  // Waits up to `timeout` for the guest to end and reaps it.
  Result<GuestExitStatus, GuestProcessError> wait(std::chrono::milliseconds timeout);
  void kill();

 private:
  GuestProcess(pid_t pid, UniqueFd pidfd) : pid_(pid), pidfd_(std::move(pidfd)) {}
  pid_t pid_ = -1;
  UniqueFd pidfd_;
  bool reaped_ = false;
};

// The report the guest left at `report` (copied out once), if it left a valid one.
std::optional<guest::ProcessReport> read_process_report(const GuestMemory& memory, GuestAddress report);

// ringfence-guest next to the running executable, or $RINGFENCE_GUEST when set.
std::string default_guest_binary();

}  // namespace rf
