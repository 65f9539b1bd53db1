// The bare-metal KVM guest: the reference guest driver (vmm-glue/guest, the same objects the
// process guest links) in a freestanding 64-bit image with no libc, no interrupts and no
// firmware. The VMM (vmm-glue/kvm/kvm_machine.h) starts the vCPU at kvm_guest_entry in long mode
// with identity-mapped page tables and RDI = the BootInfo's address; guest-physical address g
// is at pointer g (Platform::memory_base 0).
//
// The doorbell is a 32-bit write to kDoorbellPort, which KVM turns into the device's kick
// eventfd; completions are polled (notifications off). Log lines go to kDebugPort; the result
// goes into the report page (guest::ProcessReport, as a process guest writes it) and the exit
// code to kExitPort.
#include <cstdint>

#include "abi/ring_entries.h"
#include "guest/bench_workload.h"
#include "guest/driver.h"
#include "guest/process_report.h"
#include "guest/workload.h"
#include "kvm/guest_boot.h"
#include "util/cpu_relax.h"

namespace {

using rf::guest::GuestExit;
using rf::kvm::BootInfo;
using rf::kvm::Scenario;

void out8(std::uint16_t port, std::uint8_t value) { asm volatile("outb %0, %1" : : "a"(value), "Nd"(port)); }
void out32(std::uint16_t port, std::uint32_t value) { asm volatile("outl %0, %1" : : "a"(value), "Nd"(port)); }

void log(const char* text) {
  for (; *text != '\0'; ++text) out8(rf::kvm::kDebugPort, static_cast<std::uint8_t>(*text));
}

void log_u64(std::uint64_t value) {
  char digits[21];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value != 0);
  while (n > 0) out8(rf::kvm::kDebugPort, static_cast<std::uint8_t>(digits[--n]));
}

void log_i64(std::int64_t value) {
  if (value < 0) {
    out8(rf::kvm::kDebugPort, '-');
    log_u64(0 - static_cast<std::uint64_t>(value));
  } else {
    log_u64(static_cast<std::uint64_t>(value));
  }
}

void log_hex(std::uint64_t value) {
  log("0x");
  bool started = false;
  for (int shift = 60; shift >= 0; shift -= 4) {
    const unsigned nibble = (value >> shift) & 0xf;
    if (nibble == 0 && !started && shift != 0) continue;
    started = true;
    out8(rf::kvm::kDebugPort, static_cast<std::uint8_t>(nibble < 10 ? '0' + nibble : 'a' + nibble - 10));
  }
}

[[noreturn]] void exit_to_vmm(GuestExit code) {
  out32(rf::kvm::kExitPort, static_cast<std::uint32_t>(code));
  for (;;) asm volatile("hlt");  // the VMM does not resume a guest that exited
}

void kick(void*) { out32(rf::kvm::kDoorbellPort, 1); }
// No completion interrupt in this guest: a wait is a spin-wait hint, and the driver re-checks.
void wait_for_completion(void*) { rf::cpu_relax(); }

// One raw SQE, as a hostile guest would write it; polls for its completion.
void run_probe(rf::guest::Driver& driver, const BootInfo& info, rf::guest::ProcessReport& report) {
  rf::abi::GuestSqe sqe{};
  std::uint64_t scratch_addr = 0;
  std::uint16_t buf_index = 0;
  driver.device_address(info.scratch_gpa, 4096, scratch_addr, buf_index);
  sqe.opcode = static_cast<std::uint8_t>(info.probe_opcode);
  sqe.flags = rf::abi::kSqeFixedFile;
  sqe.fd = 0;
  sqe.off = info.probe_offset;
  sqe.addr = info.probe_addr != 0 ? info.probe_addr : scratch_addr;
  sqe.len = info.probe_len;
  sqe.buf_index = buf_index;
  sqe.user_data = 0x50'52'4f'42'45;  // "PROBE"
  log("probe: opcode ");
  log_u64(sqe.opcode);
  log(", addr ");
  log_hex(sqe.addr);
  log(", offset ");
  log_u64(sqe.off);
  log("\n");
  driver.set_notifications(false);
  driver.queue_raw(sqe);
  driver.submit();
  rf::guest::Completion c;
  while (driver.reap(&c, 1) == 0) rf::cpu_relax();  // the VMM's timeout bounds this
  report.probe_result = c.result;
  report.probe_done = 1;
  log("probe: completed with ");
  log_i64(c.result);
  log("\n");
}

GuestExit run_verify(rf::guest::Driver& driver, const BootInfo& info, rf::guest::ProcessReport& report) {
  rf::guest::WorkloadConfig config;
  config.seed = info.seed;
  config.passes = info.passes;
  config.depth = info.depth;
  config.poll = true;
  config.scratch_gpa = info.scratch_gpa;
  config.scratch_bytes = info.scratch_bytes;
  const rf::guest::WorkloadStatus status = rf::guest::run_verified_workload(driver, config, report.workload);
  const rf::guest::WorkloadReport& w = report.workload;
  log("verify: ");
  log(rf::guest::workload_status_name(status));
  log(": ");
  log_u64(w.passes);
  log(" passes, ");
  log_u64(w.writes);
  log(" writes, ");
  log_u64(w.reads);
  log(" reads, ");
  log_u64(w.flushes);
  log(" flushes, ");
  log_u64(w.errors);
  log(" errors, ");
  log_u64(w.mismatches);
  log(" mismatched blocks\n");
  return status == rf::guest::WorkloadStatus::Ok ? GuestExit::Ok : GuestExit::Workload;
}

GuestExit run_bench(rf::guest::Driver& driver, const BootInfo& info, rf::guest::ProcessReport& report) {
  rf::guest::BenchConfig config;
  config.seed = info.seed;
  config.block_bytes = info.block_bytes;
  config.depth = info.depth;
  config.pattern = static_cast<rf::guest::BenchPattern>(info.pattern);
  config.poll = true;
  config.control_gpa = info.control_gpa;
  config.scratch_gpa = info.scratch_gpa;
  config.scratch_bytes = info.scratch_bytes;
  const rf::guest::BenchStatus status = rf::guest::run_bench_workload(driver, config, report.bench);
  log("bench: ");
  log(rf::guest::bench_status_name(status));
  log(", ");
  log_u64(report.bench.ios);
  log(" I/Os measured at depth ");
  log_u64(report.bench.depth);
  log("\n");
  return status == rf::guest::BenchStatus::Ok ? GuestExit::Ok : GuestExit::Workload;
}

bool boot_info_usable(const BootInfo& info) {
  return info.magic == rf::kvm::kBootMagic && info.version == rf::kvm::kBootVersion &&
         info.memory_bytes >= rf::kvm::kDeviceWindowGpa && info.memory_bytes <= rf::kvm::kMaxRamBytes &&
         info.report_gpa % 8 == 0 && info.report_gpa <= info.memory_bytes - sizeof(rf::guest::ProcessReport);
}

}  // namespace

// The vCPU's first instruction (the linker script puts .text.entry at the image's start).
extern "C" [[noreturn]] __attribute__((section(".text.entry"), used)) void kvm_guest_entry(const BootInfo* boot) {
  const BootInfo info = *boot;  // read once; the VMM wrote it before the vCPU started
  log("ringfence kvm guest: up in 64-bit mode\n");
  if (!boot_info_usable(info)) {
    log("boot info refused: wrong magic, version or memory size\n");
    exit_to_vmm(GuestExit::Usage);
  }
  // SAFETY: report_gpa is 8-aligned and the whole report lies inside identity-mapped RAM
  // (boot_info_usable), so this pointer is guest RAM the VMM set aside for it.
  auto* report = reinterpret_cast<rf::guest::ProcessReport*>(info.report_gpa);
  *report = rf::guest::ProcessReport{};

  const rf::guest::Platform platform{nullptr, kick, wait_for_completion, 0, info.memory_bytes};
  rf::guest::Driver driver;
  report->attach_status = driver.attach(platform, info.descriptor_gpa);
  report->decode_status = driver.decode_status();
  report->magic = rf::guest::kReportMagic;
  if (report->attach_status != rf::guest::AttachStatus::Ok) {
    log("attach: ");
    log(rf::guest::attach_status_name(report->attach_status));
    log("\n");
    exit_to_vmm(GuestExit::Attach);
  }
  log("attached: ");
  log(driver.header().mode == rf::abi::Mode::Passthrough ? "passthrough" : "mediated");
  log(" device, descriptor at ");
  log_hex(info.descriptor_gpa);
  log(", SQ ");
  log_u64(driver.depth());
  log(" entries, disk 0 ");
  log_u64(driver.disk_count() != 0 ? driver.disk(0).size_bytes : 0);
  log(" bytes, RAM ");
  log_u64(info.memory_bytes >> 20);
  log(" MiB\n");

  GuestExit code = GuestExit::Ok;
  switch (static_cast<Scenario>(info.scenario)) {
    case Scenario::Verify: code = run_verify(driver, info, *report); break;
    case Scenario::Bench: code = run_bench(driver, info, *report); break;
    case Scenario::Probe: run_probe(driver, info, *report); break;
    case Scenario::ReadOutsideRam: {
      log("reading guest-physical memory past the end of RAM\n");
      // SAFETY: deliberately not: the page tables map nothing there, so this faults, and with no
      // IDT the fault becomes a triple fault that the VMM sees as a shutdown.
      const auto* beyond = reinterpret_cast<const volatile std::uint64_t*>(info.memory_bytes + info.probe_offset);
      report->probe_result = static_cast<std::int32_t>(*beyond);
      log("the read past RAM returned\n");
      break;
    }
    case Scenario::Spin:
      log("spinning until the VMM stops this vCPU\n");
      for (;;) rf::cpu_relax();
    default:
      log("unknown scenario\n");
      code = GuestExit::Usage;
      break;
  }
  report->counters = driver.counters();
  exit_to_vmm(code);
}
