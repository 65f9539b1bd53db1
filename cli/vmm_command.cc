#include "cli/vmm_command.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <iostream>
#include <optional>
#include <vector>

#include <fmt/format.h>

#include "cli/check_table.h"
#include "cli/hostile_probe_checks.h"
#include "cli/markdown_table.h"
#include "cli/workload_cells.h"
#include "kvm/kvm_machine.h"
#include "ring/kernel_facts.h"
#include "sandbox/process_sandbox.h"
#include "util/address.h"
#include "util/canary_page.h"
#include "util/temp_dir.h"

namespace rf::cli {

namespace {

using namespace std::chrono_literals;

constexpr std::uint64_t kDefaultDiskBytes = 1ull << 20;

struct ModeRun {
  rf_mode mode = RF_MODE_PASSTHROUGH;
  std::string error;
  std::optional<kvm::GuestOutcome> verify;
  std::uint64_t ios = 0;
  PatternCheck disk;
  std::string doorbells, refusals = "–", cleanup;
  std::vector<Check> checks;
  std::vector<std::string> log;
  bool passed = false;
};

std::string_view mode_name(rf_mode mode) { return mode == RF_MODE_PASSTHROUGH ? "passthrough" : "mediated"; }

void keep_log(ModeRun& out, const std::string& boot, const kvm::GuestOutcome& outcome) {
  out.log.push_back(fmt::format("[{} / {}]", mode_name(out.mode), boot));
  for (const std::string& line : outcome.log) out.log.push_back("  " + line);
  if (outcome.log_dropped != 0) out.log.push_back(fmt::format("  ({} bytes dropped)", outcome.log_dropped));
}

std::optional<std::int32_t> probe(kvm::KvmMachine& machine, ModeRun& out, std::uint32_t opcode, std::uint64_t addr,
                                  std::uint64_t offset, std::chrono::milliseconds timeout) {
  const kvm::GuestOutcome outcome = machine.boot(machine.probe_info(opcode, addr, offset), timeout);
  keep_log(out, "probe", outcome);
  return outcome.probe_result();
}

kvm::GuestOutcome verify(kvm::KvmMachine& machine, const VmmArgs& args, std::uint64_t seed, std::uint32_t passes,
                         std::chrono::milliseconds timeout) {
  kvm::BootInfo info = machine.boot_info(kvm::Scenario::Verify);
  info.seed = seed;
  info.passes = passes;
  info.depth = args.depth;
  return machine.boot(info, timeout);
}

PatternCheck check_disk(const std::string& path, std::uint64_t bytes, std::uint64_t seed, std::uint32_t passes,
                        std::string& error) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    error = fmt::format("cannot open {} to check it: {}", path, std::strerror(errno));
    return {};
  }
  auto check = verify_disk_pattern(fd, bytes, path, seed, passes - 1, 4096);
  ::close(fd);
  if (!check) error = check.error().message;
  return check ? *check : PatternCheck{};
}

std::vector<Check> hostile_guests(kvm::KvmMachine& machine, ModeRun& out, const std::string& disk,
                                  const VmmArgs& args, std::chrono::milliseconds timeout) {
  const bool passthrough = out.mode == RF_MODE_PASSTHROUGH;
  std::vector<Check> checks;
  // The catalogue's hostile probes (device/hostile_probes.h), each one SQE from a fresh boot.
  auto canary = CanaryPage::create();
  if (!canary) return {{"a VMM canary page", canary.error().message, false}};
  ProbeTargets targets;
  targets.canary = canary->address();
  targets.past_ram = machine.ram_bytes() + (passthrough ? address_of(machine.ram_host()) : 0);
  targets.disk_bytes = machine.disk_bytes();
  const auto submit = [&](const HostileProbe& p, const abi::GuestSqe& sqe) {
    // Address 0: the guest's own scratch memory (KvmMachine::probe_info).
    return probe(machine, out, sqe.opcode, p.address == ProbeAddress::GuestBuffer ? 0 : sqe.addr, sqe.off, timeout);
  };
  checks = run_hostile_probes(passthrough ? abi::Mode::Passthrough : abi::Mode::Mediated, targets, *canary, disk, submit);
  {
    const kvm::GuestOutcome fault = machine.boot(machine.boot_info(kvm::Scenario::ReadOutsideRam), timeout);
    keep_log(out, "read outside RAM", fault);
    checks.push_back({"the guest loads from past its RAM (expected: a fault; the VMM stops that guest)",
                      fault.describe(), fault.kind == kvm::GuestOutcome::Kind::Fault});
  }
  {
    const kvm::GuestOutcome spin = machine.boot(machine.boot_info(kvm::Scenario::Spin), 500ms);
    keep_log(out, "spin", spin);
    checks.push_back({"the guest spins forever (expected: stopped by the VMM's 0.5 s timeout)", spin.describe(),
                      spin.kind == kvm::GuestOutcome::Kind::TimedOut});
  }
  {
    const std::uint64_t seed = args.seed + 1;
    const kvm::GuestOutcome again = verify(machine, args, seed, 1, timeout);
    keep_log(out, "verify again", again);
    std::string error;
    const PatternCheck disk_check = check_disk(disk, machine.disk_bytes(), seed, 1, error);
    checks.push_back({"after all of the above, a fresh guest's verified run (expected: passes, disk checked by the VMM)",
                      error.empty() ? fmt::format("{}; {} of {} blocks hold its data", again.describe(),
                                                  disk_check.checked - disk_check.mismatched, disk_check.checked)
                                    : error,
                      again.ok() && disk_check.checked != 0 && disk_check.mismatched == 0});
  }
  return checks;
}

ModeRun run_mode(rf_mode mode, const std::string& disk, const VmmArgs& args) {
  ModeRun out;
  out.mode = mode;
  const auto timeout = std::chrono::milliseconds(static_cast<std::int64_t>(args.timeout_s * 1000));
  kvm::MachineConfig config;
  config.mode = mode;
  config.disk_path = disk;
  config.ram_bytes = std::uint64_t{args.ram_mib} << 20;
  config.guest_image = args.guest.empty() ? kvm::default_kvm_guest_image() : args.guest;
  auto machine = kvm::KvmMachine::create(config);
  if (!machine) {
    out.error = machine.error().message;
    return out;
  }
  out.verify = verify(*machine, args, args.seed, args.passes, timeout);
  keep_log(out, "verify", *out.verify);
  if (out.verify->report) {
    const guest::WorkloadReport& w = out.verify->report->workload;
    out.ios = w.reads + w.writes + w.flushes;
  }
  std::string disk_error;
  out.disk = check_disk(disk, machine->disk_bytes(), args.seed, args.passes, disk_error);
  if (!disk_error.empty()) out.error = disk_error;

  rf_device_counters counters{};
  counters.struct_size = sizeof(counters);
  const std::uint64_t kicks = out.verify->report ? out.verify->report->counters.kicks : 0;
  if (rf_device_counters_of(machine->device(), &counters) == RF_OK) {
    out.doorbells = mode == RF_MODE_PASSTHROUGH
                        ? fmt::format("{} kicks; device thread woke {} times, handed the kernel {} SQEs", kicks,
                                      counters.wakeups, counters.submitted)
                        : fmt::format("{} kicks; mediator took {} SQEs", kicks, counters.consumed);
    if (mode == RF_MODE_MEDIATED) out.refusals = fmt::format("{} of {} SQEs", counters.refused, counters.consumed);
  }
  out.checks = hostile_guests(*machine, out, disk, args, timeout);
  auto stopped = machine->stop(1000ms);
  out.cleanup = stopped ? fmt::format("device stopped: {} drained, {} cancelled, guest RAM {}", stopped->drained,
                                      stopped->cancelled, stopped->released ? "released" : "NOT released")
                        : stopped.error().message;
  out.passed = out.verify->ok() && out.error.empty() && out.disk.checked != 0 && out.disk.mismatched == 0 &&
               stopped && stopped->released &&
               all_passed(out.checks);
  return out;
}

void print_report(const std::vector<ModeRun>& modes, const VmmArgs& args) {
  std::vector<std::string> header{"measure"};
  for (const ModeRun& m : modes) header.emplace_back(mode_name(m.mode));
  const auto row = [&](const std::string& name, auto&& cell) {
    std::vector<std::string> cells{name};
    for (const ModeRun& m : modes) cells.push_back(m.verify ? cell(m) : "–");
    return cells;
  };
  std::cout << fmt::format("Verified workload (seed {:#x}, {} passes of random writes over every 4 KiB block, FSYNC, "
                           "random read-back; depth {}, polling the CQ):\n\n",
                           args.seed, args.passes, args.depth);
  MarkdownTable workload(header);
  workload.add_row(row("guest", [](const ModeRun& m) { return m.verify->describe(); }));
  // GUEST-CONTROLLED: the report, displayed only.
  const auto report = [](const ModeRun& m) { return m.verify->report ? &m.verify->report->workload : nullptr; };
  workload.add_row(row("I/Os (writes + reads + flushes)", [&](const ModeRun& m) { return workload_io_cell(m.ios, report(m)); }));
  workload.add_row(row("vCPU time, first instruction to exit", [](const ModeRun& m) { return seconds_cell(m.verify->elapsed); }));
  workload.add_row(row("kIOPS", [](const ModeRun& m) { return kiops_cell(m.ios, m.verify->elapsed, 2); }));
  workload.add_row(row("guest's check (read-back compare)", [&](const ModeRun& m) { return guest_check_cell(report(m)); }));
  workload.add_row(row("VMM's check of the disk", [](const ModeRun& m) { return disk_check_cell(m.disk.checked, m.disk.mismatched); }));
  workload.add_row(row("doorbells (port write → KVM_IOEVENTFD → kick eventfd)", [](const ModeRun& m) { return m.doorbells; }));
  workload.add_row(row("SQEs refused by the mediator", [](const ModeRun& m) { return m.refusals; }));
  std::cout << workload.render() << "\n";

  std::cout << "Hostile guests (each a fresh boot on the same device):\n\n";
  MarkdownTable checks(header);
  std::vector<const std::vector<Check>*> per_mode;
  for (const ModeRun& m : modes) per_mode.push_back(&m.checks);
  add_check_rows(checks, per_mode);
  checks.add_row(row("clean-up", [](const ModeRun& m) { return m.cleanup; }));
  std::cout << checks.render() << "\n";
}

}  // namespace

int run_vmm(const VmmArgs& args) {
  // The same test KvmMachine makes (open /dev/kvm, API version, capabilities, a VM), before any
  // file is created; its message names what is missing.
  if (auto vm = kvm::KvmVm::create(); !vm && vm.error().code == kvm::KvmErrc::Unavailable) {
    std::cerr << "ringfence vmm: cannot start: " << vm.error().message << "\n";
    return 2;
  }
  if (const auto why = io_uring_unavailable()) {
    std::cerr << "ringfence vmm: cannot start: " << *why << "\n";
    return 1;
  }
  std::cout << "ringfence vmm: a bare-metal KVM guest runs the reference driver against its shared ring\n";
  std::cout << fmt::format("kernel {}; KVM module {}\n", kernel_release(), kvm::kvm_module_description());

  TempDir dir("ringfence-vmm");
  std::string disk = args.disk;
  if (disk.empty()) {
    if (dir.path().empty()) {
      std::cerr << fmt::format("ringfence vmm: cannot create a temporary directory: {}\n", std::strerror(errno));
      return 1;
    }
    disk = dir.path() + "/disk.img";
    const int fd = ::open(disk.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
    const bool sized = fd >= 0 && ::ftruncate(fd, static_cast<off_t>(kDefaultDiskBytes)) == 0;
    if (fd >= 0) ::close(fd);
    if (!sized) {
      std::cerr << fmt::format("ringfence vmm: cannot create {}: {}\n", disk, std::strerror(errno));
      return 1;
    }
  }
  std::cout << fmt::format("disk: {}; guest RAM {} MiB at GPA 0; guest image {}\n\n", disk, args.ram_mib,
                           args.guest.empty() ? kvm::default_kvm_guest_image() : args.guest);

  std::vector<ModeRun> modes;
  if (args.mode != "mediated") modes.push_back(run_mode(RF_MODE_PASSTHROUGH, disk, args));
  if (args.mode != "passthrough") modes.push_back(run_mode(RF_MODE_MEDIATED, disk, args));
  print_report(modes, args);
  bool all_passed = true;
  std::uint64_t ios = 0;
  for (const ModeRun& m : modes) {
    if (!m.error.empty()) std::cerr << fmt::format("ringfence vmm: {}: {}\n", mode_name(m.mode), m.error);
    all_passed = all_passed && m.passed;
    ios += m.ios;
    if (args.log || !m.passed) {
      for (const std::string& line : m.log) std::cout << line << "\n";
    }
  }
  std::cout << (all_passed ? "PASS" : "FAIL")
            << fmt::format(": {} I/Os from a KVM guest verified by guest and VMM in {} mode(s); {} hostile boots each\n",
                           ios, modes.size(), modes.empty() ? 0 : modes.front().checks.size());
  return all_passed ? 0 : 1;
}

}  // namespace rf::cli
