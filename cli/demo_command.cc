#include "cli/demo_command.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <iostream>

#include <fmt/format.h>

#include "cli/markdown_table.h"
#include "disk/disk.h"
#include "disk/loop_device.h"
#include "passthrough/process_sandbox.h"
#include "ring/kernel_facts.h"
#include "util/address.h"
#include "util/temp_dir.h"

namespace rf::cli {

namespace {

constexpr std::uint64_t kDiskBytes = 64ull << 20;
constexpr std::uint64_t kRamBytes = 256ull << 20;
constexpr std::chrono::milliseconds kGuestTimeout{30'000};

struct Check {
  std::string name, expected, observed;
  bool passed = false;
};

// A guest whose only job is one raw SQE; returns what it completed with.
std::optional<std::int32_t> probe(ProcessSandbox& sandbox, std::vector<std::string> args) {
  args.insert(args.begin(), {"--scenario", "probe"});
  auto guest = sandbox.spawn(std::move(args));
  if (!guest) return std::nullopt;
  auto exit = guest->wait(kGuestTimeout);
  if (!exit || !exit->exited || exit->code != 0) return std::nullopt;
  auto report = sandbox.report();
  if (!report || report->probe_done != 1) return std::nullopt;
  return report->probe_result;
}

std::string result_label(std::optional<std::int32_t> res) {
  if (!res) return "no completion";
  return *res < 0 ? fmt::format("-{}", strerrorname_np(-*res) ? strerrorname_np(-*res) : std::to_string(-*res))
                  : std::to_string(*res);
}

std::vector<Check> security_checks(ProcessSandbox& sandbox, const std::string& image) {
  std::vector<Check> checks;
  const SelfCheckReport& self = sandbox.device().self_check();
  checks.push_back({"restrictions live (self-check after enable)", "REGISTER_PROBE → EACCES, NOP → -EACCES",
                    fmt::format("REGISTER_PROBE → {}, NOP → {}", result_label(self.register_result).substr(1),
                                result_label(self.sqe_result)),
                    self.register_result == -EACCES && self.sqe_result == -EACCES});

  // Seccomp: a guest that tries to reach the ring itself dies.
  {
    Check c{"seccomp on: the guest calls io_uring_register", "killed by SIGSYS", "", false};
    auto guest = sandbox.spawn({"--scenario", "forbidden-syscall", "--syscall", "io_uring_register"});
    if (!guest) {
      c.observed = guest.error().message;
    } else if (auto exit = guest->wait(kGuestTimeout); !exit) {
      c.observed = exit.error().message;
    } else {
      c.observed = exit->describe();
      c.passed = !exit->exited && exit->signal == SIGSYS;
    }
    checks.push_back(std::move(c));
  }

  // A READ_FIXED aimed at VMM memory outside guest RAM: the kernel refuses it, nothing moves.
  {
    Check c{"READ_FIXED into a VMM canary page outside guest RAM", "-EFAULT, canary unchanged", "", false};
    auto canary = MmapRegion::map_anonymous(page_size());
    if (canary) {
      std::fill(canary->bytes(), canary->bytes() + canary->size(), std::byte{0xc5});
      const auto res = probe(sandbox, {"--probe-addr", std::to_string(address_of(canary->data()))});
      const bool intact = std::all_of(canary->bytes(), canary->bytes() + canary->size(),
                                      [](std::byte b) { return b == std::byte{0xc5}; });
      c.observed = fmt::format("{}, canary {}", result_label(res), intact ? "unchanged" : "CHANGED");
      c.passed = res == -EFAULT && intact;
    }
    checks.push_back(std::move(c));
  }

  // The offset bound: a WRITE_FIXED 1 GiB past the end of the disk.
  {
    const Disk& disk = sandbox.device().disks().front();
    const bool bounded = disk.kind() != DiskKind::UnboundedFile;
    Check c{"WRITE_FIXED 1 GiB past the end of the disk", "-ENOSPC, image size unchanged", "", false};
    const auto res = probe(sandbox, {"--probe-op", "write", "--probe-offset", std::to_string(disk.size_bytes() + (1ull << 30))});
    struct stat st{};
    const bool same_size = ::stat(image.c_str(), &st) == 0 && static_cast<std::uint64_t>(st.st_size) == kDiskBytes;
    c.observed = fmt::format("{}, image {}", result_label(res), same_size ? "unchanged" : "GREW");
    c.passed = bounded && res && *res < 0 && same_size;
    checks.push_back(std::move(c));
  }
  return checks;
}

std::string hex(std::uint64_t v) { return fmt::format("{:#x}", v); }

}  // namespace

int run_demo(const DemoArgs& args) {
  std::cout << "ringfence demo: a sandboxed guest process drives its own restricted io_uring (passthrough)\n";
  std::cout << fmt::format("kernel {}\n\n", kernel_release());

  TempDir dir("ringfence-demo");
  if (dir.path().empty()) {
    std::cerr << fmt::format("ringfence demo: cannot create a temporary directory in {}: {}\n",
                             std::filesystem::temp_directory_path().string(), std::strerror(errno));
    return 1;
  }
  const std::string image = dir.path() + "/disk.img";
  {
    const int fd = ::open(image.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
    const bool sized = fd >= 0 && ::ftruncate(fd, static_cast<off_t>(kDiskBytes)) == 0;
    if (fd >= 0) ::close(fd);
    if (!sized) {
      std::cerr << fmt::format("ringfence demo: cannot create {}: {}\n", image, std::strerror(errno));
      return 1;
    }
  }
  DiskOptions disk_options;
  auto disk = Disk::open(image, disk_options);
  if (!disk && disk.error().code == DiskErrc::LoopDevice) {
    std::cerr << fmt::format("ringfence demo: warning: {}\nringfence demo: continuing with the image registered "
                             "directly, so the offset bound is NOT enforced on this machine\n", disk.error().message);
    disk_options.offset_bound = OffsetBound::None;
    disk = Disk::open(image, disk_options);
  }
  if (!disk) {
    std::cerr << "ringfence demo: " << disk.error().message << "\n";
    return 1;
  }
  std::vector<Disk> disks;
  disks.push_back(std::move(*disk));

  SandboxConfig config;
  config.ram_bytes = kRamBytes;
  auto sandbox = ProcessSandbox::create(std::move(disks), config);
  if (!sandbox) {
    std::cerr << "ringfence demo: " << sandbox.error().message << "\n";
    return 1;
  }
  const PassthroughDevice& device = sandbox->device();
  const RingInfo& ring = device.ring_info();
  std::cout << fmt::format("disk:       {}\n", device.disks().front().describe());
  std::cout << fmt::format("guest RAM:  {} MiB (memfd) at GPA 0, registered as {} fixed buffer(s)\n", kRamBytes >> 20,
                           device.windows().size());
  std::cout << fmt::format("device:     descriptor and rings at GPA {} ({} KiB), SQ {} / CQ {} entries, SQPOLL, "
                           "NO_MMAP, policy blk-passthrough; set up in {:.2f} ms\n",
                           hex(device.descriptor_address().value()), device.device_window_bytes() >> 10,
                           ring.sq_entries, ring.cq_entries,
                           std::chrono::duration<double, std::milli>(device.setup_time()).count());
  std::cout << fmt::format("guest:      {} (seccomp: write to the doorbell, read the notification, exit)\n\n",
                           config.guest_binary);

  VerifiedRunConfig run_config;
  run_config.seed = args.seed;
  run_config.passes = args.passes;
  run_config.depth = args.depth;
  run_config.poll = args.poll;
  auto run = run_verified_guest(*sandbox, run_config);
  if (!run) {
    std::cerr << "ringfence demo: " << run.error().message << "\n";
    return 1;
  }
  const double seconds = std::chrono::duration<double>(run->elapsed).count();
  std::cout << fmt::format("Verified workload (seed {:#x}, {} passes of random writes over every 4 KiB block, FSYNC, "
                           "random read-back; depth {}, {}):\n\n",
                           args.seed, args.passes, args.depth, args.poll ? "polling the CQ" : "waiting on the eventfd");
  MarkdownTable workload({"measure", "value"});
  workload.add_row({"guest", run->exit.describe()});
  if (run->guest) {
    const guest::WorkloadReport& w = run->guest->workload;
    workload.add_row({"I/Os (writes + reads + flushes)", fmt::format("{} ({} + {} + {})", run->ios, w.writes, w.reads, w.flushes)});
    workload.add_row({"wall time, guest start to exit", fmt::format("{:.3f} s", seconds)});
    workload.add_row({"kIOPS", fmt::format("{:.1f}", seconds > 0 ? static_cast<double>(run->ios) / seconds / 1000 : 0.0)});
    workload.add_row({"guest's check (read-back compare)", fmt::format("{} ({} errors, {} mismatched blocks)",
                                                                        guest::workload_status_name(w.status), w.errors, w.mismatches)});
    workload.add_row({"doorbells (SQPOLL wake-ups)", fmt::format("{} by the guest, {} by the VMM", run->guest->counters.kicks,
                                                                 device.wakeups())});
  } else {
    workload.add_row({"guest report", "missing or invalid"});
  }
  workload.add_row({"VMM's check of the disk", fmt::format("{} of {} blocks hold the last pass's data",
                                                          run->blocks_checked - run->blocks_mismatched, run->blocks_checked)});
  std::cout << workload.render() << "\n";

  const std::vector<Check> checks = security_checks(*sandbox, image);
  std::cout << "Security checks:\n\n";
  MarkdownTable table({"check", "expected", "observed"});
  bool all_passed = run->passed();
  for (const Check& c : checks) {
    table.add_row({c.name, c.expected, fmt::format("{} {}", c.passed ? "✓" : "✗", c.observed)});
    all_passed = all_passed && c.passed;
  }
  std::cout << table.render() << "\n";
  // Tear down before the temporary directory goes, and see the loop device go too.
  const std::string loop = sandbox->device().disks().front().loop_device();
  sandbox->close();
  if (!loop.empty()) {
    const bool detached = wait_for_loop_detach(loop, std::chrono::seconds(5));
    std::cout << fmt::format("Clean-up: {} {}\n\n", loop, detached ? "detached" : "STILL ATTACHED after 5 s");
    all_passed = all_passed && detached;
  }
  std::cout << (all_passed ? "PASS" : "FAIL") << fmt::format(": {} I/Os verified by guest and VMM; {} security checks\n",
                                                             run->ios, checks.size());
  return all_passed ? 0 : 1;
}

}  // namespace rf::cli
