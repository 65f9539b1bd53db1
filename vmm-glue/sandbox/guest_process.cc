#include "sandbox/guest_process.h"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>

namespace rf {

namespace {

GuestProcessError spawn_error(int err, std::string_view what) {
  return GuestProcessError{GuestProcessErrc::Spawn, err, fmt::format("starting the guest: {}: {}", what, std::strerror(err))};
}

// A copy of `fd` above the numbers the child's are moved to, so that the dup2s cannot clobber
// one another.
Result<UniqueFd, GuestProcessError> high_copy(int fd) {
  UniqueFd copy(::fcntl(fd, F_DUPFD_CLOEXEC, 64));
  if (!copy) return unexpected(spawn_error(errno, "duplicating a descriptor"));
  return copy;
}

class SpawnActions {
 public:
  SpawnActions() { ok_ = ::posix_spawn_file_actions_init(&actions_) == 0; }
  ~SpawnActions() {
    if (ok_) ::posix_spawn_file_actions_destroy(&actions_);
  }
  SpawnActions(const SpawnActions&) = delete;
  SpawnActions& operator=(const SpawnActions&) = delete;
  posix_spawn_file_actions_t* get() { return &actions_; }
  bool ok() const { return ok_; }

 private:
  posix_spawn_file_actions_t actions_{};
  bool ok_ = false;
};

}  // namespace

std::string GuestExitStatus::describe() const {
  if (!exited) {
    return fmt::format("killed by {}{}", sigabbrev_np(signal) ? fmt::format("SIG{}", sigabbrev_np(signal)) : std::to_string(signal),
                       signal == SIGSYS ? " (a system call its seccomp filter forbids)" : "");
  }
  return fmt::format("exited {} ({})", code, guest::guest_exit_name(code));
}

Result<GuestProcess, GuestProcessError> GuestProcess::spawn(const GuestLaunch& launch) {
  if (launch.memory == nullptr || launch.memory->memfd() < 0) {
    return unexpected(spawn_error(EINVAL, "guest memory must be memfd-backed to share it with a process"));
  }
  if (::access(launch.binary.c_str(), X_OK) != 0) {
    return unexpected(spawn_error(errno, fmt::format("{} (set RINGFENCE_GUEST to the ringfence-guest binary)", launch.binary)));
  }
  auto memfd = high_copy(launch.memory->memfd());
  if (!memfd) return unexpected(std::move(memfd).error());
  auto kick = high_copy(launch.kick_fd);
  if (!kick) return unexpected(std::move(kick).error());
  auto notify = high_copy(launch.notify_fd);
  if (!notify) return unexpected(std::move(notify).error());

  std::vector<std::string> args{launch.binary, "--descriptor", std::to_string(launch.descriptor.value()), "--report",
                                std::to_string(launch.report.value())};
  for (const GuestRegion& r : launch.memory->regions()) {
    args.push_back("--region");
    args.push_back(fmt::format("{}:{}:{}{}", r.base.value(), r.bytes, r.memfd_offset, r.read_only ? ":ro" : ""));
  }
  args.insert(args.end(), launch.scenario_args.begin(), launch.scenario_args.end());
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  char* envp[] = {nullptr};

  SpawnActions actions;
  if (!actions.ok()) return unexpected(spawn_error(ENOMEM, "posix_spawn_file_actions_init"));
  int rc = ::posix_spawn_file_actions_adddup2(actions.get(), memfd->get(), guest::kMemoryFd);
  if (rc == 0) rc = ::posix_spawn_file_actions_adddup2(actions.get(), kick->get(), guest::kKickFd);
  if (rc == 0) rc = ::posix_spawn_file_actions_adddup2(actions.get(), notify->get(), guest::kNotifyFd);
  if (rc == 0) rc = ::posix_spawn_file_actions_addopen(actions.get(), 0, "/dev/null", O_RDONLY, 0);
  if (rc == 0) rc = ::posix_spawn_file_actions_addopen(actions.get(), 1, "/dev/null", O_WRONLY, 0);
  if (rc == 0) rc = ::posix_spawn_file_actions_addclosefrom_np(actions.get(), guest::kNotifyFd + 1);
  if (rc != 0) return unexpected(spawn_error(rc, "preparing the child's descriptors"));

  pid_t pid = -1;
  rc = ::posix_spawn(&pid, launch.binary.c_str(), actions.get(), nullptr, argv.data(), envp);
  if (rc != 0) return unexpected(spawn_error(rc, launch.binary));
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  GuestProcess process(pid, std::move(pidfd));
  if (!process.pidfd_) return unexpected(spawn_error(errno, "pidfd_open"));  // the destructor kills and reaps it
  return process;
}

GuestProcess::GuestProcess(GuestProcess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)), pidfd_(std::move(other.pidfd_)), reaped_(std::exchange(other.reaped_, true)) {}

GuestProcess::~GuestProcess() {
  if (pid_ > 0 && !reaped_) {
    kill();
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
}

void GuestProcess::kill() {
  if (pid_ > 0 && !reaped_) ::kill(pid_, SIGKILL);
}

Result<GuestExitStatus, GuestProcessError> GuestProcess::wait(std::chrono::milliseconds timeout) {
  if (reaped_) return unexpected(GuestProcessError{GuestProcessErrc::Wait, ECHILD, "the guest was already reaped"});
  pollfd p{pidfd_.get(), POLLIN, 0};
  int ready = 0;
  while ((ready = ::poll(&p, 1, static_cast<int>(timeout.count()))) < 0 && errno == EINTR) {
  }
  if (ready == 0) {
    return unexpected(GuestProcessError{GuestProcessErrc::Timeout, ETIME,
                                        fmt::format("the guest did not end within {} ms", timeout.count())});
  }
  int status = 0;
  pid_t r = -1;
  while ((r = ::waitpid(pid_, &status, 0)) < 0 && errno == EINTR) {
  }
  if (r < 0) return unexpected(GuestProcessError{GuestProcessErrc::Wait, errno, "waitpid on the guest failed"});
  reaped_ = true;
  GuestExitStatus exit;
  exit.exited = WIFEXITED(status);
  exit.code = exit.exited ? WEXITSTATUS(status) : 0;
  exit.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  return exit;
}

std::optional<guest::ProcessReport> read_process_report(const GuestMemory& memory, GuestAddress report) {
  auto span = memory.translate(report, sizeof(guest::ProcessReport), DeviceAccess::ReadsGuest);
  if (!span) return std::nullopt;
  // GUEST-CONTROLLED: the guest wrote these bytes; copy once, then only display them (every
  // enum has a fixed underlying type, so any value is representable and named "unknown").
  guest::ProcessReport copy;
  std::memcpy(&copy, span->host, sizeof(copy));
  if (copy.magic != guest::kReportMagic) return std::nullopt;
  return copy;
}

std::string default_guest_binary() {
  if (const char* env = std::getenv("RINGFENCE_GUEST"); env != nullptr && *env != '\0') return env;
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return "ringfence-guest";
  return (self.parent_path() / "ringfence-guest").string();
}

}  // namespace rf
