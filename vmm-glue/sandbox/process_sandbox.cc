#include "sandbox/process_sandbox.h"

#include <unistd.h>

#include <atomic>

#include <fmt/format.h>

#include "guest/pattern.h"
#include "guest/workload.h"

namespace rf {

namespace {

constexpr std::uint64_t kScratchAlign = 2ull << 20;

SandboxError error(SandboxErrc code, int err, std::string message) { return SandboxError{code, err, std::move(message)}; }

}  // namespace

Result<PatternCheck, SandboxError> verify_disk_pattern(int fd, std::uint64_t bytes, std::string_view name,
                                                       std::uint64_t seed, std::uint32_t pass, std::uint32_t block_bytes) {
  if (block_bytes == 0 || block_bytes % 8 != 0) return unexpected(error(SandboxErrc::Verify, EINVAL, "bad block size"));
  auto buffer = MmapRegion::map_anonymous(block_bytes);  // page-aligned, as O_DIRECT wants
  if (!buffer) return unexpected(error(SandboxErrc::Verify, buffer.error().sys_errno, buffer.error().message));
  PatternCheck check;
  const std::uint64_t blocks = bytes / block_bytes;
  for (std::uint64_t b = 0; b < blocks; ++b) {
    const ssize_t got = ::pread(fd, buffer->data(), block_bytes, static_cast<off_t>(b * block_bytes));
    if (got != static_cast<ssize_t>(block_bytes)) {
      return unexpected(error(SandboxErrc::Verify, got < 0 ? errno : EIO,
                              fmt::format("reading block {} of {} back failed", b, name)));
    }
    // SAFETY: the mapping is page-aligned and block_bytes long.
    const auto* words = reinterpret_cast<const std::uint64_t*>(buffer->data());
    for (std::uint64_t w = 0; w < block_bytes / 8; ++w) {
      if (words[w] != guest::pattern_word(seed, pass, b, w)) {
        ++check.mismatched;
        break;
      }
    }
    ++check.checked;
  }
  return check;
}

Result<PatternCheck, SandboxError> verify_disk_pattern(const Disk& disk, std::uint64_t seed, std::uint32_t pass,
                                                       std::uint32_t block_bytes) {
  return verify_disk_pattern(disk.fd(), disk.size_bytes(), disk.describe(), seed, pass, block_bytes);
}

Result<ProcessSandbox, SandboxError> ProcessSandbox::create(std::vector<Disk> disks, const SandboxConfig& config) {
  const std::vector<RegionLayout> layout =
      config.regions.empty() ? std::vector<RegionLayout>{{GuestAddress{0}, config.ram_bytes, false}} : config.regions;
  auto memory = GuestMemoryBuilder::create(layout, MemoryBacking::Memfd);
  if (!memory) return unexpected(error(SandboxErrc::Memory, memory.error().sys_errno, memory.error().message));
  const GuestRegion& first = (*memory)->regions().front();
  const GuestRegion& last = (*memory)->regions().back();
  const std::uint64_t report_end = kControlPage.value() + page_size();
  const GuestAddress window = config.mode == abi::Mode::Passthrough ? config.passthrough.device_window
                                                                    : config.mediated.device_window;
  if (first.base.value() > kReportPage.value() || first.bytes < report_end - first.base.value() || first.read_only ||
      last.read_only || report_end > window.value()) {
    return unexpected(error(SandboxErrc::Memory, 0,
                            fmt::format("guest RAM must start at or below {:#x} with a writable region that holds the "
                                        "report and control pages before the device window, and end in a writable region",
                                        kReportPage.value())));
  }
  ProcessSandbox sandbox;
  sandbox.memory_ = std::move(*memory);
  if (config.mode == abi::Mode::Passthrough) {
    auto device = PassthroughDevice::create(sandbox.memory_, std::move(disks), config.passthrough);
    if (!device) return unexpected(error(SandboxErrc::Device, device.error().sys_errno, device.error().message));
    sandbox.passthrough_ = device->get();
    sandbox.device_ = std::move(*device);
  } else {
    auto device = MediatedDevice::create(sandbox.memory_, std::move(disks), config.mediated);
    if (!device) return unexpected(error(SandboxErrc::Device, device.error().sys_errno, device.error().message));
    sandbox.mediated_ = device->get();
    sandbox.device_ = std::move(*device);
  }
  if (auto started = sandbox.device_->start(); !started) {
    return unexpected(error(SandboxErrc::Device, started.error().sys_errno, started.error().message));
  }
  sandbox.guest_binary_ = config.guest_binary;

  // Scratch: the last region, after the device window if the window is in it.
  const std::uint64_t last_end = last.base.value() + last.bytes;  // validated: does not pass 2^64
  std::optional<std::uint64_t> scratch = last.base.value();
  if (sandbox.device_->descriptor_address() >= last.base) {
    const auto window_end = sandbox.device_->descriptor_address().checked_add(sandbox.device_->device_window_bytes());
    scratch = window_end ? checked_align_up(window_end->value(), kScratchAlign) : std::nullopt;
  }
  if (!scratch || *scratch >= last_end) {
    return unexpected(error(SandboxErrc::Memory, 0, "guest RAM leaves no room for scratch memory after the device window"));
  }
  sandbox.scratch_ = GuestAddress{*scratch};
  sandbox.scratch_bytes_ = last_end - *scratch;
  return sandbox;
}

void ProcessSandbox::close() {
  passthrough_ = nullptr;
  mediated_ = nullptr;
  device_.reset();
  memory_.reset();
}

Result<GuestProcess, GuestProcessError> ProcessSandbox::spawn(std::vector<std::string> scenario_args) const {
  GuestLaunch launch;
  launch.binary = guest_binary_;
  launch.memory = memory_.get();
  launch.descriptor = device_->descriptor_address();
  launch.report = kReportPage;
  launch.kick_fd = device_->kick_fd();
  launch.notify_fd = device_->notify_fd();
  launch.scenario_args = {"--scratch-gpa", std::to_string(scratch_.value()), "--scratch-bytes",
                          std::to_string(scratch_bytes_), "--control", std::to_string(kControlPage.value())};
  launch.scenario_args.insert(launch.scenario_args.end(), scenario_args.begin(), scenario_args.end());
  return GuestProcess::spawn(launch);
}

void ProcessSandbox::set_bench_phase(guest::BenchPhase phase) {
  // create() checked that the first region is writable and holds the control page.
  auto span = memory_->translate(kControlPage, sizeof(guest::BenchControl), DeviceAccess::WritesGuest);
  if (!span) return;
  // SAFETY: a page-aligned word of guest RAM that only the VMM writes; the guest loads it
  // atomically, so the store must be atomic too.
  std::atomic_ref<std::uint32_t>(*reinterpret_cast<std::uint32_t*>(span->host))
      .store(static_cast<std::uint32_t>(phase), std::memory_order_release);
}

Result<VerifiedRunReport, SandboxError> run_verified_guest(ProcessSandbox& sandbox, const VerifiedRunConfig& config) {
  const guest::WorkloadConfig defaults;
  std::vector<std::string> args{"--scenario", "verify", "--seed", std::to_string(config.seed), "--passes",
                                std::to_string(config.passes), "--depth", std::to_string(config.depth)};
  if (config.poll) args.emplace_back("--poll");
  const auto start = std::chrono::steady_clock::now();
  auto guest = sandbox.spawn(std::move(args));
  if (!guest) return unexpected(error(SandboxErrc::Guest, guest.error().sys_errno, guest.error().message));
  auto exit = guest->wait(config.timeout);
  if (!exit) return unexpected(error(SandboxErrc::Guest, exit.error().sys_errno, exit.error().message));

  VerifiedRunReport report;
  report.elapsed = std::chrono::steady_clock::now() - start;
  report.exit = *exit;
  report.guest = sandbox.report();
  if (report.guest) {
    const guest::WorkloadReport& w = report.guest->workload;
    report.ios = w.reads + w.writes + w.flushes;
    report.guest_ok = exit->exited && exit->code == 0 && w.status == guest::WorkloadStatus::Ok;
  }
  if (config.passes != 0) {
    auto check = verify_disk_pattern(sandbox.device().disks().front(), config.seed, config.passes - 1, defaults.block_bytes);
    if (!check) return unexpected(std::move(check).error());
    report.blocks_checked = check->checked;
    report.blocks_mismatched = check->mismatched;
  }
  return report;
}

}  // namespace rf
