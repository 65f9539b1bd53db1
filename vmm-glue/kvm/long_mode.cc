#include "kvm/long_mode.h"

#include <cstring>

#include "kvm/guest_boot.h"

namespace rf::kvm {

namespace {

// Flat 64-bit code (L=1, P=1, DPL 0, execute/read) and data (P=1, DPL 0, read/write, 4 GiB).
constexpr std::uint64_t kGdt[] = {0, 0x00af'9a00'0000'ffffULL, 0x00cf'9200'0000'ffffULL};

void put(std::span<std::byte> memory, std::uint64_t gpa, std::uint64_t value) {
  // Little-endian, as x86 reads it; the caller checked gpa + 8 is inside `memory`.
  std::memcpy(memory.data() + gpa, &value, sizeof(value));
}

kvm_segment segment(std::uint16_t selector, std::uint8_t type, bool code) {
  kvm_segment s{};
  s.base = 0;
  s.limit = 0xffff'ffff;
  s.selector = selector;
  s.type = type;
  s.present = 1;
  s.dpl = 0;
  s.db = code ? 0 : 1;  // a 64-bit code segment has D=0, L=1
  s.s = 1;
  s.l = code ? 1 : 0;
  s.g = 1;
  return s;
}

}  // namespace

bool write_long_mode_tables(std::span<std::byte> low_memory, std::uint64_t ram_bytes) {
  if (ram_bytes == 0 || ram_bytes > kMaxRamBytes || low_memory.size() < kDeviceWindowGpa) return false;
  std::memset(low_memory.data() + kGdtGpa, 0, kStackTop - kGdtGpa);  // GDT, tables, stack
  for (std::size_t i = 0; i < std::size(kGdt); ++i) put(low_memory, kGdtGpa + i * 8, kGdt[i]);

  const std::uint64_t pages = (ram_bytes + kLargePage - 1) / kLargePage;
  const std::uint64_t directories = (pages + 511) / 512;
  put(low_memory, kPml4Gpa, kPdptGpa | kPtePresent | kPteWritable);
  for (std::uint64_t d = 0; d < directories; ++d) {
    const std::uint64_t directory = kPageDirectoryGpa + d * 0x1000;
    put(low_memory, kPdptGpa + d * 8, directory | kPtePresent | kPteWritable);
  }
  for (std::uint64_t p = 0; p < pages; ++p) {
    put(low_memory, kPageDirectoryGpa + p * 8, p * kLargePage | kPtePresent | kPteWritable | kPteLargePage);
  }
  return true;
}

void set_long_mode_registers(kvm_sregs& sregs) {
  sregs.cs = segment(kCodeSelector, 0xb, true);  // execute/read, accessed
  sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = segment(kDataSelector, 0x3, false);  // read/write, accessed
  sregs.gdt.base = kGdtGpa;
  sregs.gdt.limit = sizeof(kGdt) - 1;
  sregs.idt = {};  // no interrupts: an exception in the guest is a triple fault, which KVM reports
  // A present 64-bit TSS (busy) and no LDT: what VMX requires of a long-mode guest, and what
  // KVM's PVM flavour checks before it stops emulating the vCPU instruction by instruction.
  sregs.tr = {};
  sregs.tr.limit = 0x67;
  sregs.tr.type = 11;
  sregs.tr.present = 1;
  sregs.ldt = {};
  sregs.ldt.unusable = 1;
  sregs.cr3 = kPml4Gpa;
  sregs.cr4 = kCr4Pae | kCr4OsFxsr | kCr4OsXmmExcept;
  sregs.cr0 = kCr0ProtectedMode | kCr0MonitorCoprocessor | kCr0ExtensionType | kCr0NumericError | kCr0WriteProtect |
              kCr0Paging;
  sregs.efer = kEferSyscall | kEferLongModeEnable | kEferLongModeActive | kEferNoExecute;
}

}  // namespace rf::kvm
