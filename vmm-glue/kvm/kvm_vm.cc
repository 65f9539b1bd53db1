#include "kvm/kvm_vm.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <vector>

#include <fmt/format.h>

#include "kvm/long_mode.h"
#include "util/address.h"
#include "util/cycle_counter.h"

namespace rf::kvm {

namespace {

constexpr int kKvmApiVersion = 12;  // the only one there has ever been
constexpr std::uint32_t kMsrIa32Tsc = 0x10;
// Where KVM on Intel keeps the three pages it needs for a real-mode TSS; above any RAM we map.
constexpr std::uint64_t kTssAddress = 0xfffb'd000;
const int kInterruptSignal = SIGRTMIN + 7;

// <linux/kvm.h>'s structs that end in a flexible array (kvm_cpuid2, kvm_msrs) have another layout
// in C++: __DECLARE_FLEX_ARRAY puts an empty struct before the array, which C++ sizes at one byte,
// so both the array's offset and the ioctl numbers (which encode sizeof) come out wrong. These
// are built by hand with the C layout: a count, 4 bytes of padding, then the entries.
struct FlexHeader {
  std::uint32_t count;
  std::uint32_t padding;
};
static_assert(sizeof(FlexHeader) == 8);
constexpr unsigned long kGetSupportedCpuid = _IOWR(KVMIO, 0x05, FlexHeader);
constexpr unsigned long kSetCpuid2 = _IOW(KVMIO, 0x90, FlexHeader);
constexpr unsigned long kGetMsrs = _IOWR(KVMIO, 0x88, FlexHeader);

// A FlexHeader followed by `count` entries of T, with the C layout.
template <typename T>
struct FlexBuffer {
  explicit FlexBuffer(std::uint32_t count) : storage(sizeof(FlexHeader) + count * sizeof(T)) {
    header()->count = count;
  }
  // SAFETY: `storage` holds the header and then `count` entries; operator new aligns it for both.
  FlexHeader* header() { return reinterpret_cast<FlexHeader*>(storage.data()); }
  T* entries() { return reinterpret_cast<T*>(storage.data() + sizeof(FlexHeader)); }
  void* data() { return storage.data(); }
  std::vector<std::byte> storage;
};

KvmError setup_error(int err, std::string_view what) {
  return KvmError{KvmErrc::Setup, err, fmt::format("KVM: {}: {}", what, std::strerror(err))};
}

void ignore_signal(int) {}

void install_interrupt_handler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction action{};
    action.sa_handler = ignore_signal;  // no SA_RESTART: KVM_RUN must come back with EINTR
    sigemptyset(&action.sa_mask);
    ::sigaction(kInterruptSignal, &action, nullptr);
  });
}

}  // namespace

std::string kvm_module_description() {
  for (const char* module : {"kvm_intel", "kvm_amd", "kvm_pvm"}) {
    if (std::filesystem::exists(std::string("/sys/module/") + module)) {
      return std::string(module) + (std::string_view(module) == "kvm_pvm"
                                        ? " (PVM: this guest is not PVM-aware, so KVM emulates it instruction by "
                                          "instruction; expect emulator speed)"
                                        : "");
    }
  }
  return "unknown";
}

Result<KvmVm, KvmError> KvmVm::create() {
  KvmVm vm;
  vm.kvm_.reset(::open("/dev/kvm", O_RDWR | O_CLOEXEC));
  if (!vm.kvm_) {
    const int err = errno;
    return unexpected(KvmError{KvmErrc::Unavailable, err,
                               fmt::format("cannot open /dev/kvm: {} (this needs a machine with KVM: hardware "
                                           "virtualisation, the kvm module, and access to /dev/kvm)",
                                           std::strerror(err))});
  }
  if (const int version = ::ioctl(vm.kvm_.get(), KVM_GET_API_VERSION, 0); version != kKvmApiVersion) {
    return unexpected(KvmError{KvmErrc::Unavailable, 0, fmt::format("/dev/kvm speaks API version {}, not {}", version, kKvmApiVersion)});
  }
  for (const auto& [cap, name] : {std::pair{KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"},
                                  std::pair{KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD"},
                                  std::pair{KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"},
                                  std::pair{KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"}}) {
    if (::ioctl(vm.kvm_.get(), KVM_CHECK_EXTENSION, cap) <= 0) {
      return unexpected(KvmError{KvmErrc::Unavailable, 0, fmt::format("/dev/kvm lacks {}", name)});
    }
  }
  vm.vm_.reset(::ioctl(vm.kvm_.get(), KVM_CREATE_VM, 0));
  if (!vm.vm_) {
    const int err = errno;
    return unexpected(KvmError{KvmErrc::Unavailable, err, fmt::format("KVM_CREATE_VM failed: {}", std::strerror(err))});
  }
  // Intel's VMX needs these pages for a real-mode TSS; harmless elsewhere.
  if (::ioctl(vm.vm_.get(), KVM_SET_TSS_ADDR, kTssAddress) != 0) return unexpected(setup_error(errno, "KVM_SET_TSS_ADDR"));
  vm.vcpu_.reset(::ioctl(vm.vm_.get(), KVM_CREATE_VCPU, 0));
  if (!vm.vcpu_) return unexpected(setup_error(errno, "KVM_CREATE_VCPU"));
  const int mmap_size = ::ioctl(vm.kvm_.get(), KVM_GET_VCPU_MMAP_SIZE, 0);
  if (mmap_size < static_cast<int>(sizeof(kvm_run))) return unexpected(setup_error(errno, "KVM_GET_VCPU_MMAP_SIZE"));
  void* run = ::mmap(nullptr, static_cast<std::size_t>(mmap_size), PROT_READ | PROT_WRITE, MAP_SHARED, vm.vcpu_.get(), 0);
  if (run == MAP_FAILED) return unexpected(setup_error(errno, "mapping the vCPU's kvm_run page"));
  vm.run_ = static_cast<kvm_run*>(run);
  vm.mmap_size_ = static_cast<std::size_t>(mmap_size);

  // The guest sees what this CPU and KVM support (SSE for compiled code, the TSC it times with).
  FlexBuffer<kvm_cpuid_entry2> cpuid(256);  // KVM_MAX_CPUID_ENTRIES; KVM lowers the count
  if (::ioctl(vm.kvm_.get(), kGetSupportedCpuid, cpuid.data()) != 0) return unexpected(setup_error(errno, "KVM_GET_SUPPORTED_CPUID"));
  if (::ioctl(vm.vcpu_.get(), kSetCpuid2, cpuid.data()) != 0) return unexpected(setup_error(errno, "KVM_SET_CPUID2"));
  return vm;
}

KvmVm::KvmVm(KvmVm&& other) noexcept
    : kvm_(std::move(other.kvm_)),
      vm_(std::move(other.vm_)),
      vcpu_(std::move(other.vcpu_)),
      run_(std::exchange(other.run_, nullptr)),
      mmap_size_(std::exchange(other.mmap_size_, 0)),
      next_slot_(other.next_slot_) {}

KvmVm::~KvmVm() {
  if (run_ != nullptr) ::munmap(run_, mmap_size_);
}

Result<void, KvmError> KvmVm::add_memory(std::uint64_t gpa, std::uint64_t bytes, void* host, bool read_only) {
  kvm_userspace_memory_region region{};
  region.slot = next_slot_;
  region.flags = read_only ? KVM_MEM_READONLY : 0;
  region.guest_phys_addr = gpa;
  region.memory_size = bytes;
  region.userspace_addr = address_of(host);
  if (::ioctl(vm_.get(), KVM_SET_USER_MEMORY_REGION, &region) != 0) {
    return unexpected(setup_error(errno, fmt::format("KVM_SET_USER_MEMORY_REGION (slot {}, GPA {:#x}, {} bytes)",
                                                     next_slot_, gpa, bytes)));
  }
  ++next_slot_;
  return {};
}

Result<void, KvmError> KvmVm::add_port_eventfd(std::uint16_t port, int eventfd) {
  kvm_ioeventfd io{};
  io.addr = port;
  io.len = 4;
  io.fd = eventfd;
  io.flags = KVM_IOEVENTFD_FLAG_PIO;
  if (::ioctl(vm_.get(), KVM_IOEVENTFD, &io) != 0) {
    return unexpected(setup_error(errno, fmt::format("KVM_IOEVENTFD on port {:#x}", port)));
  }
  return {};
}

Result<void, KvmError> KvmVm::reset_vcpu(std::uint64_t entry, std::uint64_t stack_top, std::uint64_t argument) {
  kvm_sregs sregs{};
  if (::ioctl(vcpu_.get(), KVM_GET_SREGS, &sregs) != 0) return unexpected(setup_error(errno, "KVM_GET_SREGS"));
  set_long_mode_registers(sregs);
  if (::ioctl(vcpu_.get(), KVM_SET_SREGS, &sregs) != 0) return unexpected(setup_error(errno, "KVM_SET_SREGS"));
  kvm_regs regs{};
  regs.rip = entry;
  // The System V ABI's state at a function's first instruction: RSP + 8 is 16-byte aligned.
  regs.rsp = stack_top - 8;
  regs.rdi = argument;
  regs.rflags = 0x2;  // bit 1 is always set; interrupts off
  if (::ioctl(vcpu_.get(), KVM_SET_REGS, &regs) != 0) return unexpected(setup_error(errno, "KVM_SET_REGS"));
  return {};
}

Result<std::uint64_t, KvmError> KvmVm::guest_tsc_ahead() {
  FlexBuffer<kvm_msr_entry> msrs(1);
  msrs.entries()[0].index = kMsrIa32Tsc;
  if (::ioctl(vcpu_.get(), kGetMsrs, msrs.data()) != 1) return unexpected(setup_error(errno, "KVM_GET_MSRS (TSC)"));
  const unsigned long long host = read_cycle_counter();
  // The host read comes after the guest's, so this errs towards the guest being behind: a
  // guest tick converted with it lands no earlier than it truly happened.
  return msrs.entries()[0].data - host;
}

std::optional<std::uint64_t> KvmVm::instruction_pointer() {
  kvm_regs regs{};
  if (::ioctl(vcpu_.get(), KVM_GET_REGS, &regs) != 0) return std::nullopt;
  return regs.rip;
}

VcpuExit KvmVm::run() {
  VcpuExit exit;
  if (::ioctl(vcpu_.get(), KVM_RUN, 0) != 0) {
    const int err = errno;
    if (err == EINTR) {
      exit.kind = VcpuExit::Kind::Interrupted;
    } else {
      exit.detail = fmt::format("KVM_RUN: {}", std::strerror(err));
    }
    return exit;
  }
  switch (run_->exit_reason) {
    case KVM_EXIT_IO: {
      exit.kind = run_->io.direction == KVM_EXIT_IO_OUT ? VcpuExit::Kind::PortWrite : VcpuExit::Kind::PortRead;
      exit.port = run_->io.port;
      exit.size = run_->io.size;
      exit.count = run_->io.count;
      // GUEST-CONTROLLED: size and count come from the guest's instruction; KVM keeps the data
      // inside the vCPU's mapping, and the offset is checked against it anyway.
      const std::uint64_t bytes = std::uint64_t{exit.size} * exit.count;
      if (run_->io.data_offset > mmap_size_ || bytes > mmap_size_ - run_->io.data_offset) {
        exit.kind = VcpuExit::Kind::Failed;
        exit.detail = "port I/O data outside the kvm_run mapping";
        break;
      }
      // SAFETY: [data_offset, data_offset + bytes) was just checked to lie inside the mapping.
      auto* base = reinterpret_cast<std::uint8_t*>(run_);
      if (exit.kind == VcpuExit::Kind::PortRead) {
        std::memset(base + run_->io.data_offset, 0xff, static_cast<std::size_t>(bytes));
      }
      exit.data = base + run_->io.data_offset;
      break;
    }
    case KVM_EXIT_MMIO:
      exit.kind = VcpuExit::Kind::Mmio;
      exit.address = run_->mmio.phys_addr;
      exit.detail = fmt::format("{} of {} bytes at GPA {:#x}", run_->mmio.is_write ? "write" : "read", run_->mmio.len,
                                run_->mmio.phys_addr);
      break;
    case KVM_EXIT_HLT: exit.kind = VcpuExit::Kind::Halt; break;
    case KVM_EXIT_SHUTDOWN: exit.kind = VcpuExit::Kind::Shutdown; break;
    case KVM_EXIT_FAIL_ENTRY:
      exit.detail = fmt::format("entry failed (hardware reason {:#x})", run_->fail_entry.hardware_entry_failure_reason);
      break;
    case KVM_EXIT_INTERNAL_ERROR:
      exit.detail = fmt::format("KVM internal error (suberror {}{})", run_->internal.suberror,
                                run_->internal.suberror == KVM_INTERNAL_ERROR_EMULATION ? ": instruction emulation failed" : "");
      break;
    case KVM_EXIT_INTR: exit.kind = VcpuExit::Kind::Interrupted; break;
    default: exit.detail = fmt::format("unexpected exit reason {}", run_->exit_reason); break;
  }
  if (exit.kind == VcpuExit::Kind::Failed || exit.kind == VcpuExit::Kind::Shutdown) {
    kvm_regs regs{};
    if (::ioctl(vcpu_.get(), KVM_GET_REGS, &regs) == 0) {
      exit.detail += fmt::format("{}at RIP {:#x}, RSP {:#x}", exit.detail.empty() ? "" : " ", regs.rip, regs.rsp);
    }
  }
  return exit;
}

void KvmVm::interrupt(pthread_t vcpu_thread) {
  install_interrupt_handler();
  // Seen by a KVM_RUN that has not started yet; the signal breaks one that has.
  __atomic_store_n(&run_->immediate_exit, 1, __ATOMIC_SEQ_CST);
  ::pthread_kill(vcpu_thread, kInterruptSignal);
}

void KvmVm::clear_interrupt() { __atomic_store_n(&run_->immediate_exit, 0, __ATOMIC_SEQ_CST); }

}  // namespace rf::kvm
