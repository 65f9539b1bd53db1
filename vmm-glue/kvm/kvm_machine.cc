#include "kvm/kvm_machine.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <span>

#include <fmt/format.h>

#include "kvm/long_mode.h"
#include "util/unique_fd.h"

namespace rf::kvm {

// The boot in progress: written by the vCPU thread, read by finish_boot() once `done`.
struct VcpuRun {
  std::mutex mutex;
  std::condition_variable changed;
  bool done = false;
  std::atomic<bool> timed_out{false};
  GuestOutcome outcome;
};

namespace {

constexpr std::uint64_t kPage = 4096;
constexpr std::chrono::seconds kInterruptGrace{5};

MachineError api_error(MachineErrc code, rf_status status, std::string_view what) {
  return MachineError{code, rf_last_errno(),
                      fmt::format("{}: {} ({})", what, rf_last_error(), rf_status_name(status))};
}

Result<std::vector<unsigned char>, MachineError> read_image(const std::string& path) {
  const auto fail = [&](int err, std::string_view why) {
    return unexpected(MachineError{
        MachineErrc::Image, err,
        fmt::format("cannot load the KVM guest image {}: {} (build the ringfence-kvm-guest target, or point "
                    "--guest or RINGFENCE_KVM_GUEST at the image)",
                    path, why)});
  };
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return fail(errno, std::strerror(errno));
  struct stat st{};
  if (::fstat(fd.get(), &st) != 0) return fail(errno, std::strerror(errno));
  if (!S_ISREG(st.st_mode) || st.st_size <= 0 || static_cast<std::uint64_t>(st.st_size) > kImageMaxBytes) {
    return fail(EINVAL, fmt::format("not a regular file of 1 to {} bytes", kImageMaxBytes));
  }
  std::vector<unsigned char> image(static_cast<std::size_t>(st.st_size));
  std::size_t done = 0;
  while (done < image.size()) {
    const ssize_t got = ::read(fd.get(), image.data() + done, image.size() - done);
    if (got <= 0) return fail(got < 0 ? errno : EIO, got < 0 ? std::strerror(errno) : "file shrank while read");
    done += static_cast<std::size_t>(got);
  }
  return image;
}

// Collects the guest's debug-port bytes into lines, within fixed bounds.
void append_log(GuestOutcome& out, std::string& line, const std::uint8_t* data, std::uint64_t bytes) {
  for (std::uint64_t i = 0; i < bytes; ++i) {
    // GUEST-CONTROLLED: any byte; only printable ASCII is kept, and lines and their count are bounded.
    const auto c = static_cast<char>(data[i]);
    if (c == '\n') {
      if (out.log.size() < kMaxLogLines) {
        out.log.push_back(std::move(line));
      } else {
        out.log_dropped += line.size() + 1;
      }
      line.clear();
    } else if (line.size() < kMaxLogLineBytes && out.log.size() < kMaxLogLines) {
      line.push_back(c >= 0x20 && c < 0x7f ? c : '?');
    } else {
      ++out.log_dropped;
    }
  }
}

// The vCPU thread: runs the guest until it exits, faults, halts or is interrupted.
void run_vcpu(KvmVm& vm, VcpuRun& run) {
  GuestOutcome out;
  std::string line;
  const auto start = std::chrono::steady_clock::now();
  for (bool running = true; running;) {
    const VcpuExit exit = vm.run();
    switch (exit.kind) {
      case VcpuExit::Kind::PortWrite:
        if (exit.port == kDebugPort && exit.size == 1) {
          append_log(out, line, exit.data, exit.count);
        } else if (exit.port == kExitPort && exit.size == 4 && exit.count == 1) {
          std::uint32_t code = 0;
          std::memcpy(&code, exit.data, sizeof(code));
          out.kind = GuestOutcome::Kind::Exited;
          out.exit_code = static_cast<int>(code & 0xff);
          running = false;
        } else {
          ++out.stray_port_io;  // e.g. a doorbell of the wrong width: KVM_IOEVENTFD matches 4 bytes only
        }
        break;
      case VcpuExit::Kind::PortRead: ++out.stray_port_io; break;
      case VcpuExit::Kind::Mmio:
        out.kind = GuestOutcome::Kind::Fault;
        out.detail = "the guest touched memory outside its RAM: " + exit.detail;
        running = false;
        break;
      case VcpuExit::Kind::Halt:
        out.kind = GuestOutcome::Kind::Halted;
        running = false;
        break;
      case VcpuExit::Kind::Shutdown:
        out.kind = GuestOutcome::Kind::Fault;
        out.detail = "triple fault (an exception the guest had no handler for) " + exit.detail;
        running = false;
        break;
      case VcpuExit::Kind::Interrupted:
        if (run.timed_out.load()) {
          out.kind = GuestOutcome::Kind::TimedOut;
          running = false;
        }
        break;
      case VcpuExit::Kind::Failed:
        out.kind = GuestOutcome::Kind::Failed;
        out.detail = exit.detail;
        running = false;
        break;
    }
  }
  out.elapsed = std::chrono::steady_clock::now() - start;
  if (!line.empty() && out.log.size() < kMaxLogLines) out.log.push_back(std::move(line));
  std::lock_guard lock(run.mutex);
  run.outcome = std::move(out);
  run.done = true;
  run.changed.notify_all();
}

}  // namespace

std::string GuestOutcome::describe() const {
  switch (kind) {
    case Kind::Exited:
      return fmt::format("exited {} ({})", exit_code, guest::guest_exit_name(exit_code));
    case Kind::Halted: return "halted without an exit code";
    case Kind::Fault: return "fault: " + detail;
    case Kind::TimedOut: return "timed out (vCPU stopped" + (detail.empty() ? ")" : " " + detail + ")");
    case Kind::Failed: return "vCPU failed: " + detail;
  }
  return "unknown";
}

std::string default_kvm_guest_image() {
  if (const char* env = std::getenv("RINGFENCE_KVM_GUEST"); env != nullptr && *env != '\0') return env;
  constexpr const char* kName = "ringfence-kvm-guest.bin";
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return kName;
  const auto beside = self.parent_path() / kName;
  if (std::filesystem::exists(beside, ec)) return beside.string();
  return (self.parent_path().parent_path() / "share" / "ringfence" / kName).string();
}

Result<KvmMachine, MachineError> KvmMachine::create(const MachineConfig& config) {
  if (config.ram_bytes == 0 || config.ram_bytes % kLargePage != 0 || config.ram_bytes > kMaxRamBytes) {
    return unexpected(MachineError{MachineErrc::Memory, EINVAL,
                                   fmt::format("guest RAM of {} bytes: it must be a non-zero multiple of 2 MiB, at "
                                               "most {} GiB (the page tables this VMM builds)",
                                               config.ram_bytes, kMaxRamBytes >> 30)});
  }
  KvmMachine m;
  auto image = read_image(config.guest_image);
  if (!image) return unexpected(std::move(image).error());
  m.image_ = std::move(*image);

  auto vm = KvmVm::create();
  if (!vm) return unexpected(MachineError{MachineErrc::Kvm, vm.error().sys_errno, vm.error().message});
  m.vm_ = std::make_unique<KvmVm>(std::move(*vm));

  // Guest RAM: one memfd region at GPA 0, which both KVM and the device map.
  const rf_region want{0, config.ram_bytes, 0, 0, nullptr, 0};
  if (rf_status s = rf_memory_create(&want, 1, RF_MEMORY_MEMFD, &m.memory_); s != RF_OK) {
    return unexpected(api_error(MachineErrc::Memory, s, "guest RAM"));
  }
  rf_region region{};
  if (rf_status s = rf_memory_region(m.memory_, 0, &region); s != RF_OK) {
    return unexpected(api_error(MachineErrc::Memory, s, "guest RAM"));
  }
  m.ram_host_ = region.host;
  m.ram_ = static_cast<std::byte*>(region.host);
  m.ram_bytes_ = config.ram_bytes;
  if (auto added = m.vm_->add_memory(0, config.ram_bytes, region.host, false); !added) {
    return unexpected(MachineError{MachineErrc::Kvm, added.error().sys_errno, added.error().message});
  }

  rf_disk* disk = nullptr;
  if (rf_status s = rf_disk_open(config.disk_path.c_str(), config.disk_flags, &disk); s != RF_OK) {
    return unexpected(api_error(MachineErrc::Disk, s, "the disk"));
  }
  m.disk_bytes_ = rf_disk_size(disk);
  m.disk_block_bytes_ = rf_disk_block_size(disk);
  m.disk_description_ = rf_disk_describe(disk);
  rf_policy* policy = nullptr;
  if (!config.policy.empty()) {
    if (rf_status s = rf_policy_load(config.policy.c_str(), &policy); s != RF_OK) {
      rf_disk_close(disk);
      return unexpected(api_error(MachineErrc::Policy, s, "the policy"));
    }
  }
  rf_device_config device_config{};
  device_config.struct_size = sizeof(device_config);
  device_config.mode = config.mode;
  device_config.device_window_gpa = kDeviceWindowGpa;
  device_config.queue_depth = config.queue_depth;
  device_config.policy = policy;
  if (config.kernel_sqpoll && config.mode == RF_MODE_PASSTHROUGH) device_config.flags |= RF_DEVICE_KERNEL_SQPOLL;
  if (config.device_cpu) {
    device_config.flags |= config.mode == RF_MODE_PASSTHROUGH ? RF_DEVICE_PIN_SQPOLL : RF_DEVICE_PIN_MEDIATOR;
    device_config.sqpoll_cpu = device_config.mediator_cpu = *config.device_cpu;
  }
  std::uint64_t window = 0;
  rf_status s = rf_device_window_size(m.memory_, 1, &device_config, &window);
  if (s == RF_OK) {
    m.scratch_gpa_ = (kDeviceWindowGpa + window + kLargePage - 1) / kLargePage * kLargePage;
    if (m.scratch_gpa_ + kLargePage > m.ram_bytes_) {
      rf_disk_close(disk);
      rf_policy_free(policy);
      return unexpected(MachineError{MachineErrc::Memory, EINVAL,
                                     fmt::format("{} MiB of guest RAM leave no scratch memory after the {}-byte device "
                                                 "window; give the guest more RAM",
                                                 m.ram_bytes_ >> 20, window)});
    }
    const rf_disk* disks[] = {disk};
    s = rf_device_create(m.memory_, disks, 1, &device_config, &m.device_);
  }
  // The device holds its own disk handle and its own copy of the policy.
  const std::string failure = s == RF_OK ? "" : rf_last_error();
  rf_disk_close(disk);
  rf_policy_free(policy);
  if (s != RF_OK) {
    return unexpected(MachineError{MachineErrc::Device, 0, fmt::format("the device: {} ({})", failure, rf_status_name(s))});
  }
  if (rf_status started = rf_device_start(m.device_); started != RF_OK) {
    return unexpected(api_error(MachineErrc::Device, started, "starting the device"));
  }
  // The doorbell: a 32-bit write to kDoorbellPort signals the kick eventfd inside KVM.
  if (auto wired = m.vm_->add_port_eventfd(kDoorbellPort, rf_device_kick_fd(m.device_)); !wired) {
    return unexpected(MachineError{MachineErrc::Kvm, wired.error().sys_errno, wired.error().message});
  }
  return m;
}

KvmMachine::KvmMachine(KvmMachine&& other) noexcept
    : memory_(std::exchange(other.memory_, nullptr)),
      device_(std::exchange(other.device_, nullptr)),
      vm_(std::move(other.vm_)),
      image_(std::move(other.image_)),
      ram_(other.ram_),
      ram_host_(other.ram_host_),
      ram_bytes_(other.ram_bytes_),
      scratch_gpa_(other.scratch_gpa_),
      disk_bytes_(other.disk_bytes_),
      disk_block_bytes_(other.disk_block_bytes_),
      disk_description_(std::move(other.disk_description_)),
      vcpu_thread_(std::move(other.vcpu_thread_)),
      run_(std::move(other.run_)) {}

KvmMachine::~KvmMachine() { release(); }

void KvmMachine::release() {
  if (vcpu_thread_.joinable()) finish_boot(std::chrono::milliseconds(0));
  rf_device_destroy(device_);  // stops it first if need be
  device_ = nullptr;
  vm_.reset();  // KVM lets go of guest RAM before it is unmapped
  if (memory_ != nullptr && rf_memory_destroy(memory_) == RF_OK) memory_ = nullptr;
}

BootInfo KvmMachine::boot_info(Scenario scenario) const {
  BootInfo info;
  info.scenario = static_cast<std::uint32_t>(scenario);
  info.memory_bytes = ram_bytes_;
  info.descriptor_gpa = device_ != nullptr ? rf_device_descriptor_gpa(device_) : 0;
  info.scratch_gpa = scratch_gpa_;
  info.scratch_bytes = scratch_bytes();
  return info;
}

BootInfo KvmMachine::probe_info(std::uint32_t opcode, std::uint64_t addr, std::uint64_t offset) const {
  BootInfo info = boot_info(Scenario::Probe);
  info.probe_opcode = opcode;
  info.probe_addr = addr;
  info.probe_offset = offset;
  return info;
}

Result<void, MachineError> KvmMachine::start_boot(const BootInfo& info) {
  const auto fail = [](std::string why) { return unexpected(MachineError{MachineErrc::Boot, EINVAL, std::move(why)}); };
  if (vcpu_thread_.joinable()) return fail("a guest is already running on this machine");
  if (device_ == nullptr || rf_device_state_of(device_) != RF_DEVICE_RUNNING) return fail("the device is not running");
  // A fresh guest: its image, page tables, boot parameters, an empty report and a Ramp control word.
  std::span<std::byte> ram(ram_, ram_bytes_);
  if (!write_long_mode_tables(ram, ram_bytes_)) return fail("the page tables do not fit guest RAM");
  std::memset(ram_ + kImageGpa, 0, kImageMaxBytes);
  std::memcpy(ram_ + kImageGpa, image_.data(), image_.size());
  std::memset(ram_ + kReportGpa, 0, kPage);
  std::memset(ram_ + kControlGpa, 0, kPage);
  std::memset(ram_ + kBootInfoGpa, 0, kPage);
  std::memcpy(ram_ + kBootInfoGpa, &info, sizeof(info));
  vm_->clear_interrupt();
  if (auto reset = vm_->reset_vcpu(kImageGpa, kStackTop, kBootInfoGpa); !reset) {
    return unexpected(MachineError{MachineErrc::Boot, reset.error().sys_errno, reset.error().message});
  }
  run_ = std::make_unique<VcpuRun>();
  vcpu_thread_ = std::thread(run_vcpu, std::ref(*vm_), std::ref(*run_));
  return {};
}

GuestOutcome KvmMachine::finish_boot(std::chrono::milliseconds timeout) {
  if (!vcpu_thread_.joinable()) {
    GuestOutcome none;
    none.detail = "no guest was started";
    return none;
  }
  {
    std::unique_lock lock(run_->mutex);
    if (!run_->changed.wait_for(lock, timeout, [&] { return run_->done; })) {
      run_->timed_out.store(true);
      vm_->interrupt(vcpu_thread_.native_handle());
      // KVM_RUN returns at once with immediate_exit set; the grace only guards against a bug.
      if (!run_->changed.wait_for(lock, kInterruptGrace, [&] { return run_->done; })) std::abort();
    }
  }
  vcpu_thread_.join();
  GuestOutcome out = std::move(run_->outcome);
  run_.reset();
  if (out.kind == GuestOutcome::Kind::TimedOut) {
    if (const auto rip = vm_->instruction_pointer()) out.detail = fmt::format("at RIP {:#x}", *rip);
  }
  // GUEST-CONTROLLED: the guest wrote these bytes; copy once, then only display them.
  guest::ProcessReport report;
  std::memcpy(&report, ram_ + kReportGpa, sizeof(report));
  if (report.magic == guest::kReportMagic) out.report = report;
  return out;
}

GuestOutcome KvmMachine::boot(const BootInfo& info, std::chrono::milliseconds timeout) {
  if (auto started = start_boot(info); !started) {
    GuestOutcome failed;
    failed.detail = started.error().message;
    return failed;
  }
  return finish_boot(timeout);
}

bool KvmMachine::guest_running() {
  if (!vcpu_thread_.joinable()) return false;
  std::lock_guard lock(run_->mutex);
  return !run_->done;
}

Result<std::uint64_t, MachineError> KvmMachine::guest_tsc_ahead() {
  if (vcpu_thread_.joinable()) {
    return unexpected(MachineError{MachineErrc::Boot, EBUSY, "the guest's TSC is read only between boots"});
  }
  auto ahead = vm_->guest_tsc_ahead();
  if (!ahead) return unexpected(MachineError{MachineErrc::Kvm, ahead.error().sys_errno, ahead.error().message});
  return *ahead;
}

bool KvmMachine::read_guest(std::uint64_t gpa, std::span<std::byte> out) const {
  if (gpa > ram_bytes_ || out.size() > ram_bytes_ - gpa) return false;
  // SAFETY: [gpa, gpa + size) was just checked to lie inside guest RAM, mapped while the machine lives.
  std::memcpy(out.data(), ram_ + gpa, out.size());
  return true;
}

void KvmMachine::set_bench_phase(guest::BenchPhase phase) {
  // SAFETY: kControlGpa is a 4-aligned word inside guest RAM, which stays mapped while the machine lives.
  auto* word = reinterpret_cast<std::uint32_t*>(ram_ + kControlGpa);
  __atomic_store_n(word, static_cast<std::uint32_t>(phase), __ATOMIC_RELEASE);
}

Result<rf_stop_report, MachineError> KvmMachine::stop(std::chrono::milliseconds drain) {
  if (vcpu_thread_.joinable()) finish_boot(std::chrono::milliseconds(0));
  rf_stop_report report{};
  report.struct_size = sizeof(report);
  if (rf_status s = rf_device_stop(device_, static_cast<std::uint32_t>(drain.count()), &report); s != RF_OK) {
    return unexpected(api_error(MachineErrc::Device, s, "stopping the device"));
  }
  return report;
}

}  // namespace rf::kvm
