#include "cli/demo_command.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <iostream>

#include <fmt/format.h>

#include "cli/check_table.h"
#include "cli/hostile_probe_checks.h"
#include "cli/markdown_table.h"
#include "cli/workload_cells.h"
#include "disk/disk.h"
#include "disk/loop_device.h"
#include "sandbox/process_sandbox.h"
#include "ring/kernel_facts.h"
#include "util/address.h"
#include "util/canary_page.h"
#include "util/temp_dir.h"

namespace rf::cli {

namespace {

constexpr std::uint64_t kDiskBytes = 64ull << 20;
constexpr std::uint64_t kRamBytes = 256ull << 20;
constexpr std::chrono::milliseconds kGuestTimeout{30'000};
constexpr abi::Mode kModes[] = {abi::Mode::Passthrough, abi::Mode::Mediated};

// Everything one mode produced, for the side-by-side tables.
struct ModeRun {
  abi::Mode mode = abi::Mode::Passthrough;
  std::string error;  // set when the mode could not run at all
  std::string disk;
  std::chrono::nanoseconds setup{0};
  unsigned sq_entries = 0, cq_entries = 0;
  std::optional<VerifiedRunReport> run;
  std::string doorbells;
  std::string refusals = "–";
  std::vector<Check> checks;
  std::string cleanup;
  bool passed = false;
};

std::string_view mode_name(abi::Mode mode) { return mode == abi::Mode::Passthrough ? "passthrough" : "mediated"; }

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

std::vector<Check> security_checks(ProcessSandbox& sandbox, const std::string& image) {
  const bool passthrough = sandbox.device().mode() == abi::Mode::Passthrough;
  std::vector<Check> checks;
  const SelfCheckReport& self = sandbox.device().self_check();
  checks.push_back({"restrictions live on the kernel ring (self-check: REGISTER_PROBE → EACCES, NOP → -EACCES)",
                    fmt::format("REGISTER_PROBE → {}, NOP → {}", result_label(self.register_result).substr(1),
                                result_label(self.sqe_result)),
                    self.register_result == -EACCES && self.sqe_result == -EACCES});

  // Seccomp: a guest that tries to reach the ring itself dies.
  {
    Check c{"seccomp on: the guest calls io_uring_register (expected: killed by SIGSYS)", "", false};
    auto guest = sandbox.spawn({"--scenario", "forbidden-syscall", "--syscall", "io_uring_register"});
    if (!guest) {
      c.observed = guest.error().message;
    } else if (auto exit = guest->wait(kGuestTimeout); !exit) {
      c.observed = exit.error().message;
    } else {
      c.observed = !exit->exited && exit->signal == SIGSYS ? "killed by SIGSYS" : exit->describe();
      c.passed = !exit->exited && exit->signal == SIGSYS;
    }
    checks.push_back(std::move(c));
  }

  // The catalogue's hostile probes (device/hostile_probes.h), each one SQE from a fresh guest.
  auto canary = CanaryPage::create();
  if (!canary) {
    checks.push_back({"a VMM canary page for the hostile probes", canary.error().message, false});
    return checks;
  }
  const GuestRegion& last = sandbox.memory().regions().back();
  ProbeTargets targets;
  targets.canary = canary->address();
  targets.past_ram = passthrough ? address_of(last.host + last.bytes) : last.base.value() + last.bytes;
  targets.disk_bytes = sandbox.device().disks().front().size_bytes();
  const auto submit = [&](const HostileProbe& p, const abi::GuestSqe& sqe) {
    std::vector<std::string> args{"--probe-opcode", std::to_string(sqe.opcode), "--probe-offset", std::to_string(sqe.off)};
    if (p.address != ProbeAddress::GuestBuffer) args.insert(args.end(), {"--probe-addr", std::to_string(sqe.addr)});
    return probe(sandbox, std::move(args));  // GuestBuffer: the guest's own scratch memory, its default
  };
  const auto probes = run_hostile_probes(sandbox.device().mode(), targets, *canary, image, submit);
  checks.insert(checks.end(), probes.begin(), probes.end());
  return checks;
}

Result<Disk, DiskError> open_demo_disk(const std::string& image) {
  DiskOptions options;
  auto disk = Disk::open(image, options);
  if (!disk && disk.error().code == DiskErrc::LoopDevice) {
    std::cerr << fmt::format("ringfence demo: warning: {}\nringfence demo: continuing with the image registered "
                             "directly, so the offset bound is NOT enforced in passthrough on this machine\n",
                             disk.error().message);
    options.offset_bound = OffsetBound::None;
    disk = Disk::open(image, options);
  }
  return disk;
}

ModeRun run_mode(abi::Mode mode, const std::string& image, const DemoArgs& args) {
  ModeRun out;
  out.mode = mode;
  auto disk = open_demo_disk(image);
  if (!disk) {
    out.error = disk.error().message;
    return out;
  }
  out.disk = disk->describe();
  std::vector<Disk> disks;
  disks.push_back(std::move(*disk));
  SandboxConfig config;
  config.ram_bytes = kRamBytes;
  config.mode = mode;
  auto sandbox = ProcessSandbox::create(std::move(disks), config);
  if (!sandbox) {
    out.error = sandbox.error().message;
    return out;
  }
  out.setup = sandbox->device().setup_times().total;
  out.sq_entries = sandbox->device().header().ring.sq_entries;
  out.cq_entries = sandbox->device().header().ring.cq_entries;

  VerifiedRunConfig run_config;
  run_config.seed = args.seed;
  run_config.passes = args.passes;
  run_config.depth = args.depth;
  run_config.poll = args.poll;
  auto run = run_verified_guest(*sandbox, run_config);
  if (!run) {
    out.error = run.error().message;
    return out;
  }
  out.run = std::move(*run);
  const std::uint64_t kicks = out.run->guest ? out.run->guest->counters.kicks : 0;
  if (PassthroughDevice* p = sandbox->passthrough()) {
    out.doorbells = p->submitter() == PassthroughSubmitter::KernelSqpoll
                        ? fmt::format("{} kicks, {} SQPOLL wake-ups", kicks, p->doorbells())
                        : fmt::format("{} kicks, device thread woke {} times, held back {} times", kicks, p->doorbells(),
                                      p->throttled());
  } else if (MediatedDevice* m = sandbox->mediated()) {
    const MediatorCounters c = m->counters();
    out.doorbells = fmt::format("{} kicks, mediator slept {} times", kicks, c.sleeps);
    out.refusals = fmt::format("{} of {} SQEs{}", c.refused_total(), c.consumed,
                               c.broken == BrokenReason::None ? "" : fmt::format("; BROKEN: {}", c.broken_detail));
  }
  out.checks = security_checks(*sandbox, image);

  // Tear down, and see the loop device go too.
  const std::string loop = sandbox->device().disks().front().loop_device();
  sandbox->close();
  bool clean = true;
  if (!loop.empty()) {
    clean = wait_for_loop_detach(loop, std::chrono::seconds(5));
    out.cleanup = fmt::format("{} {}", loop, clean ? "detached" : "STILL ATTACHED after 5 s");
  } else {
    out.cleanup = "no loop device";
  }
  out.passed = out.run->passed() && clean &&
               all_passed(out.checks);
  return out;
}

std::string millis(std::chrono::nanoseconds d) {
  return fmt::format("{:.1f} ms", std::chrono::duration<double, std::milli>(d).count());
}

void print_report(const std::vector<ModeRun>& modes, const DemoArgs& args) {
  std::vector<std::string> header{"measure"};
  for (const ModeRun& m : modes) header.emplace_back(mode_name(m.mode));
  const auto row = [&](const std::string& name, auto&& cell) {
    std::vector<std::string> cells{name};
    for (const ModeRun& m : modes) cells.push_back(m.run ? cell(m) : "–");
    return cells;
  };

  MarkdownTable devices(header);
  devices.add_row({"data path", "the guest's own kernel ring in its RAM (NO_MMAP), the device thread submits (bounded), policy blk-passthrough",
                   "guest rings in its RAM → mediator thread → private kernel ring, policy blk-mediated"});
  devices.add_row(row("SQ / CQ entries", [](const ModeRun& m) { return fmt::format("{} / {}", m.sq_entries, m.cq_entries); }));
  devices.add_row(row("device set-up (registers 256 MiB of guest RAM)", [](const ModeRun& m) { return millis(m.setup); }));
  std::cout << "Devices (one disk, 256 MiB of memfd guest RAM at GPA 0):\n\n" << devices.render() << "\n";

  std::cout << fmt::format("Verified workload (seed {:#x}, {} passes of random writes over every 4 KiB block, FSYNC, "
                           "random read-back; depth {}, {}):\n\n",
                           args.seed, args.passes, args.depth, args.poll ? "polling the CQ" : "waiting on the eventfd");
  MarkdownTable workload(header);
  workload.add_row(row("guest", [](const ModeRun& m) { return m.run->exit.describe(); }));
  // GUEST-CONTROLLED: the report, displayed only.
  const auto report = [](const ModeRun& m) { return m.run->guest ? &m.run->guest->workload : nullptr; };
  workload.add_row(row("I/Os (writes + reads + flushes)", [&](const ModeRun& m) { return workload_io_cell(m.run->ios, report(m)); }));
  workload.add_row(row("wall time, guest start to exit", [](const ModeRun& m) { return seconds_cell(m.run->elapsed); }));
  workload.add_row(row("kIOPS", [](const ModeRun& m) { return kiops_cell(m.run->ios, m.run->elapsed, 1); }));
  workload.add_row(row("guest's check (read-back compare)", [&](const ModeRun& m) { return guest_check_cell(report(m)); }));
  workload.add_row(row("VMM's check of the disk", [](const ModeRun& m) {
    return disk_check_cell(m.run->blocks_checked, m.run->blocks_mismatched);
  }));
  workload.add_row(row("doorbells", [](const ModeRun& m) { return m.doorbells; }));
  workload.add_row(row("SQEs refused by the mediator", [](const ModeRun& m) { return m.refusals; }));
  std::cout << workload.render() << "\n";

  std::cout << "Security checks:\n\n";
  MarkdownTable checks({"check", "passthrough", "mediated"});
  if (!modes.empty() && modes.front().run) {
    std::vector<const std::vector<Check>*> per_mode;
    for (const ModeRun& m : modes) per_mode.push_back(&m.checks);
    add_check_rows(checks, per_mode);
  }
  checks.add_row(row("clean-up", [](const ModeRun& m) { return m.cleanup; }));
  std::cout << checks.render() << "\n";
}

}  // namespace

int run_demo(const DemoArgs& args) {
  std::cout << "ringfence demo: a sandboxed guest process drives its disk through restricted io_uring, in both data "
               "paths\n";
  std::cout << fmt::format("kernel {}\n", kernel_release());

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

  std::vector<ModeRun> modes;
  for (abi::Mode mode : kModes) modes.push_back(run_mode(mode, image, args));
  std::cout << fmt::format("disk: {}\n\n", modes.front().disk);
  print_report(modes, args);

  bool all_passed = true;
  std::uint64_t ios = 0;
  for (const ModeRun& m : modes) {
    if (!m.error.empty()) std::cerr << fmt::format("ringfence demo: {}: {}\n", mode_name(m.mode), m.error);
    all_passed = all_passed && m.passed;
    ios += m.run ? m.run->ios : 0;
  }
  std::cout << (all_passed ? "PASS" : "FAIL")
            << fmt::format(": {} I/Os verified by guest and VMM in {} modes; {} security checks each\n", ios,
                           std::size(kModes), modes.front().checks.size());
  return all_passed ? 0 : 1;
}

}  // namespace rf::cli
