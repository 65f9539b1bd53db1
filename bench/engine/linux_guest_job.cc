#include "engine/linux_guest_job.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "engine/child_program.h"
#include "engine/cpu_times.h"
#include "util/temp_dir.h"

extern char** environ;

namespace rf::bench {

namespace {

using namespace std::chrono_literals;

bool rfblk_row(LinuxGuestRow row) { return row == LinuxGuestRow::Passthrough || row == LinuxGuestRow::Mediated; }

bool on_path(const std::string& program) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path != nullptr ? path : "/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    if (::access((dir + "/" + program).c_str(), X_OK) == 0) return true;
  }
  return false;
}

bool exists(const std::string& path) {
  std::error_code ec;
  return std::filesystem::exists(path, ec);
}

// A program started in the background with its output in `log`, killed when it goes out of scope.
class Background {
 public:
  static Result<Background, std::string> start(std::vector<std::string> args, const std::string& log) {
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    ::posix_spawn_file_actions_init(&actions);
    ::posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ::posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
    ::posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    pid_t pid = -1;
    const int rc = ::posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ);
    ::posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) return unexpected(fmt::format("cannot run {}: {}", args.front(), std::strerror(rc)));
    return Background(pid);
  }
  Background(Background&& other) noexcept : pid_(std::exchange(other.pid_, -1)) {}
  Background& operator=(Background&&) = delete;
  ~Background() { stop(SIGKILL, 0ms); }
  pid_t pid() const { return pid_; }
  // Waits up to `timeout` for it to exit by itself; true if it did.
  bool wait(std::chrono::milliseconds timeout) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (pid_ > 0) {
      int status = 0;
      const pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_ || (r < 0 && errno != EINTR)) {
        pid_ = -1;
        return true;
      }
      if (std::chrono::steady_clock::now() >= end) return false;
      std::this_thread::sleep_for(50ms);
    }
    return true;
  }
  // Sends `signal`, waits up to `grace`, then kills it.
  void stop(int signal, std::chrono::milliseconds grace) {
    if (pid_ <= 0) return;
    ::kill(pid_, signal);
    if (!wait(grace)) {
      ::kill(pid_, SIGKILL);
      wait(10s);
    }
  }

 private:
  explicit Background(pid_t pid) : pid_(pid) {}
  pid_t pid_;
};

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string tail(const std::string& text, std::size_t lines) {
  std::size_t at = text.size();
  for (std::size_t n = 0; n <= lines && at != std::string::npos && at > 0; ++n) at = text.rfind('\n', at - 1);
  return at == std::string::npos ? text : text.substr(at + 1);
}

std::vector<std::string> backend_command(LinuxGuestRow row, const FioJob& fio, const LinuxGuestSetup& setup,
                                         const std::string& socket) {
  const bool writes = fio.pattern != Pattern::RandRead;
  if (row == LinuxGuestRow::QsdVirtio) {
    struct stat st{};
    const bool block = ::stat(fio.target.c_str(), &st) == 0 && S_ISBLK(st.st_mode);
    return {"qemu-storage-daemon", "--blockdev",
            fmt::format("driver={},node-name=disk0,filename={},aio=io_uring,cache.direct=on,read-only={}",
                        block ? "host_device" : "file", fio.target, writes ? "off" : "on"),
            "--export",
            fmt::format("type=vhost-user-blk,id=exp0,node-name=disk0,addr.type=unix,addr.path={},writable={},num-queues=1",
                        socket, writes ? "on" : "off")};
  }
  std::string self = setup.ringfence;
  if (self.empty()) {
    std::error_code ec;
    self = std::filesystem::read_symlink("/proc/self/exe", ec).string();
  }
  std::vector<std::string> args{self,      "vhost-user-blk", "--socket", socket, "--disk", fio.target,
                                "--queues", rfblk_row(row) ? "2" : "1", "--mode",
                                row == LinuxGuestRow::Passthrough ? "passthrough" : "mediated"};
  if (!writes) args.emplace_back("--read-only");
  return args;
}


}  // namespace

std::string_view linux_row_name(LinuxGuestRow row) {
  switch (row) {
    case LinuxGuestRow::Passthrough: return "linux-passthrough";
    case LinuxGuestRow::Mediated: return "linux-mediated";
    case LinuxGuestRow::Virtio: return "linux-virtio";
    case LinuxGuestRow::QsdVirtio: return "qsd-virtio";
  }
  return "linux-?";
}

std::string default_guest_image_dir() { return RF_GUEST_IMAGE_DIR; }

std::optional<std::string> linux_row_unsupported(LinuxGuestRow row, const LinuxGuestSetup& setup) {
  if (!on_path("qemu-system-x86_64")) return "qemu-system-x86_64 is not installed (scripts/install-deps.sh installs it)";
  if (row == LinuxGuestRow::QsdVirtio && !on_path("qemu-storage-daemon")) {
    return "qemu-storage-daemon is not installed (scripts/install-deps.sh installs qemu-system-common)";
  }
  if (!exists(setup.image_dir + "/vmlinuz") || !exists(setup.image_dir + "/initramfs.cpio")) {
    return fmt::format("no guest image in {} (build it: cmake --build build --target guest-image; or --guest-image DIR)",
                       setup.image_dir);
  }
  if (rfblk_row(row) && !exists(setup.image_dir + "/.has-rfblk")) {
    return fmt::format("the guest image in {} has no rfblk.ko (the build found no kernel headers; see docs/linux-guest.md)",
                       setup.image_dir);
  }
  if (setup.accel == "kvm" && ::access("/dev/kvm", R_OK | W_OK) != 0) return "--accel kvm, but /dev/kvm is not usable";
  return std::nullopt;
}

Result<RowSummary, std::string> run_linux_guest_job(LinuxGuestRow row, const FioJob& fio, const LinuxGuestSetup& setup) {
  if (auto why = linux_row_unsupported(row, setup)) return unexpected(std::move(*why));
  TempDir dir("ringfence-linux-row");
  if (dir.path().empty()) return unexpected(std::string("cannot create a temporary directory"));
  const std::string socket = dir.path() + "/vub.sock", console = dir.path() + "/console.log";
  auto backend = Background::start(backend_command(row, fio, setup, socket), dir.path() + "/backend.log");
  if (!backend) return unexpected(std::move(backend).error());
  for (int i = 0; i < 100 && !exists(socket); ++i) std::this_thread::sleep_for(100ms);
  if (!exists(socket)) {
    return unexpected(fmt::format("{}'s back-end did not open its socket: {}", linux_row_name(row),
                                  tail(read_file(dir.path() + "/backend.log"), 5)));
  }
  const bool rfblk = rfblk_row(row);
  const std::string scenario_args =
      fmt::format("{},{},{},{},{},{}", rfblk ? "hipri" : "irq", pattern_name(fio.pattern), fio.block_bytes, fio.depth,
                  std::lround(fio.ramp_s * 1000), std::lround(fio.runtime_s * 1000));
  std::vector<std::string> qemu{
      "qemu-system-x86_64", "-accel", setup.accel, "-m", "512", "-smp", "1", "-nographic", "-nodefaults", "-no-reboot",
      "-serial", "file:" + console, "-object", "memory-backend-memfd,id=mem,size=512M,share=on", "-numa", "node,memdev=mem",
      "-chardev", "socket,id=vub0,path=" + socket, "-device",
      fmt::format("vhost-user-blk-pci,chardev=vub0,num-queues={}", rfblk ? 2 : 1), "-kernel", setup.image_dir + "/vmlinuz",
      "-initrd", setup.image_dir + "/initramfs.cpio", "-append",
      fmt::format("console=ttyS0 quiet panic=-1 rf.scenario=fio-json rf.args={} rf.driver={} rf.modparams={}", scenario_args,
                  rfblk ? "rfblk" : "virtio_blk", rfblk ? "poll_queues=1" : "")};
  auto guest = Background::start(qemu, dir.path() + "/qemu.log");
  if (!guest) return unexpected(std::move(guest).error());
  // The host's CPU over the measured fio run only (not the boot or the ramp): the back-end's and
  // QEMU's (the guest's vCPU and QEMU's own threads), sampled when the guest's console says the
  // measured run starts and when its report begins.
  const auto limit = std::chrono::seconds(180 + static_cast<long>(fio.ramp_s + fio.runtime_s));
  const auto deadline = std::chrono::steady_clock::now() + limit;
  const auto host_cpu = [&]() -> std::optional<CpuTimes> {
    const auto b = process_cpu_times(backend->pid());
    const auto q = process_cpu_times(guest->pid());
    if (!b || !q) return std::nullopt;  // one has ended: no reading (the row then has no CPU figure)
    return *b + *q;
  };
  std::optional<CpuTimes> cpu_before, cpu_after;
  bool finished = false;
  while (!(finished = guest->wait(20ms)) && std::chrono::steady_clock::now() < deadline) {
    if (cpu_after) continue;
    const std::string so_far = read_file(console);
    if (!cpu_before && so_far.find("RF-FIO-MEASURE") != std::string::npos) cpu_before = host_cpu();
    if (cpu_before && so_far.find("RF-FIO-JSON-BEGIN") != std::string::npos) cpu_after = host_cpu();
  }
  guest->stop(SIGKILL, 0ms);
  backend->stop(SIGTERM, 10s);

  std::string text = read_file(console);
  std::erase(text, '\r');  // a serial console ends its lines with CR LF
  if (!finished) return unexpected(fmt::format("{}: the guest did not finish in {} s", linux_row_name(row), limit.count()));
  const auto begin = text.find("RF-FIO-JSON-BEGIN\n"), end = text.find("RF-FIO-JSON-END");
  if (text.find("RF-RESULT: PASS") == std::string::npos || begin == std::string::npos || end == std::string::npos ||
      end < begin) {
    return unexpected(fmt::format("{}: the guest's fio did not pass: {}", linux_row_name(row), tail(text, 8)));
  }
  auto summary = parse_fio_json(text.substr(begin + 18, end - begin - 18), fio.pattern);
  if (!summary) return unexpected(fmt::format("{}: {}", linux_row_name(row), summary.error()));
  if (cpu_before && cpu_after && summary->ios != 0) {
    const auto used = (*cpu_after - *cpu_before).total();
    summary->cpu_us_per_io = std::chrono::duration<double, std::micro>(used).count() / static_cast<double>(summary->ios);
  }
  return summary;
}

std::string linux_guest_description(const LinuxGuestSetup& setup) {
  std::string qemu = "QEMU";
  if (auto v = run_program({"qemu-system-x86_64", "--version"}); v && v->exit_status == 0) {
    qemu = v->output.substr(0, v->output.find('\n'));
  }
  std::error_code ec;
  const std::string kernel = std::filesystem::read_symlink(setup.image_dir + "/vmlinuz", ec).filename().string();
  return fmt::format("{} -accel {}, -smp 1, 512 MiB; guest kernel {}; image {}", qemu, setup.accel,
                     kernel.empty() ? "?" : kernel, setup.image_dir);
}

}  // namespace rf::bench
