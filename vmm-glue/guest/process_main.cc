// ringfence-guest: the reference guest driver as a sandboxed process. The VMM starts it with
// guest RAM (a memfd) on fd 3, the doorbell eventfd on fd 4 and the notification eventfd on
// fd 5, and nothing else. It maps guest RAM so that guest-physical address g is at
// base + g, closes everything but fds 4 and 5, installs its seccomp filter (write to 4, read
// from 5, exit_group) and only then reads the ring descriptor. Its result goes into guest RAM
// (ProcessReport at --report) and its exit status (GuestExit).
#include <fcntl.h>
#include <malloc.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <charconv>
#include <csignal>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>

#include "guest/bench_workload.h"
#include "guest/driver.h"
#include "guest/hostile_guest.h"
#include "guest/process_report.h"
#include "guest/workload.h"
#include "restrictions/guest_seccomp.h"
#include "util/address.h"

namespace {

using rf::guest::GuestExit;

struct RegionArg {
  std::uint64_t gpa = 0, bytes = 0, offset = 0;
  bool read_only = false;
};

[[noreturn]] void quit(GuestExit code) { ::_exit(static_cast<int>(code)); }

void kick(void*) {
  const std::uint64_t one = 1;
  (void)!::write(rf::guest::kKickFd, &one, sizeof(one));
}

void wait_for_completion(void*) {
  std::uint64_t count = 0;
  (void)!::read(rf::guest::kNotifyFd, &count, sizeof(count));
}

bool parse_region(const std::string& text, RegionArg& out) {
  // GPA:BYTES:MEMFD_OFFSET[:ro], decimal, as the VMM writes them.
  std::uint64_t fields[3] = {};
  const char* p = text.data();
  const char* end = text.data() + text.size();
  for (int i = 0; i < 3; ++i) {
    const auto [next, ec] = std::from_chars(p, end, fields[i]);
    if (ec != std::errc{} || (next != end && *next != ':')) return false;
    p = next == end ? end : next + 1;
  }
  const std::string_view rest(p, static_cast<std::size_t>(end - p));
  if (!rest.empty() && rest != "ro") return false;
  out = RegionArg{fields[0], fields[1], fields[2], rest == "ro"};
  return true;
}

// Maps every region at base + gpa inside one PROT_NONE reservation, so that the gaps between
// regions fault instead of aliasing anything.
std::uintptr_t map_guest_memory(const std::vector<RegionArg>& regions, std::uint64_t& span) {
  struct stat st{};
  if (::fstat(rf::guest::kMemoryFd, &st) != 0) return 0;
  span = 0;
  for (const RegionArg& r : regions) {
    if (r.bytes == 0 || r.gpa + r.bytes < r.gpa || r.offset + r.bytes < r.offset ||
        r.offset + r.bytes > static_cast<std::uint64_t>(st.st_size)) {
      return 0;
    }
    if (r.gpa + r.bytes > span) span = r.gpa + r.bytes;
  }
  void* base = ::mmap(nullptr, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (base == MAP_FAILED) return 0;
  for (const RegionArg& r : regions) {
    // SAFETY: base + gpa .. + bytes lies inside the reservation made just above (span covers
    // every region's end), so MAP_FIXED replaces only our own PROT_NONE pages.
    void* at = static_cast<char*>(base) + r.gpa;
    const int prot = r.read_only ? PROT_READ : PROT_READ | PROT_WRITE;
    if (::mmap(at, r.bytes, prot, MAP_SHARED | MAP_FIXED, rf::guest::kMemoryFd, static_cast<off_t>(r.offset)) ==
        MAP_FAILED) {
      return 0;
    }
  }
  return rf::address_of(base);
}

// Keeps `depth` reads in flight until the VMM kills the guest.
[[noreturn]] void flood(rf::guest::Driver& driver, std::uint64_t scratch_gpa, std::uint32_t depth) {
  rf::guest::Completion done[rf::guest::kWorkloadMaxDepth];
  const std::uint32_t block = driver.disk(0).logical_block_size;
  for (std::uint64_t i = 0;; ++i) {
    while (driver.in_flight() < depth) {
      const rf::guest::Request r{rf::guest::Op::Read, 0, (i % 64) * block, scratch_gpa, block, i};
      if (driver.queue(r) != rf::guest::RequestStatus::Ok) break;
    }
    driver.submit();
    driver.reap_wait(done, rf::guest::kWorkloadMaxDepth);
  }
}

}  // namespace

int main(int argc, char** argv) {
  // The guest never outlives its VMM.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() == 1) quit(GuestExit::Setup);
  // free() may hand memory back to the kernel (brk, munmap), which the filter forbids; libseccomp
  // frees its context right after loading the filter. Keep freed memory in the heap instead.
  ::mallopt(M_MMAP_MAX, 0);
  ::mallopt(M_TRIM_THRESHOLD, -1);

  CLI::App app{"ringfence-guest: the reference guest driver in a sandboxed process (started by the VMM)"};
  std::vector<std::string> region_texts;
  std::uint64_t descriptor_gpa = 0, report_gpa = 0, scratch_gpa = 0, scratch_bytes = 0;
  std::optional<std::uint64_t> probe_addr;
  std::uint64_t probe_offset = 0;
  std::string probe_op = "read";
  std::optional<std::uint8_t> probe_opcode;
  rf::guest::WorkloadConfig config;
  std::string scenario = "verify", forbidden;
  std::string rw = "randread";
  std::uint32_t block_bytes = 4096;
  std::uint64_t control_gpa = 0;
  std::uint64_t program_gpa = 0;
  app.add_option("--region", region_texts, "GPA:BYTES:MEMFD_OFFSET[:ro]")->required();
  app.add_option("--descriptor", descriptor_gpa, "guest-physical address of the ring descriptor")->required();
  app.add_option("--report", report_gpa, "guest-physical address of the report page")->required();
  app.add_option("--scratch-gpa", scratch_gpa, "guest RAM the workload may use");
  app.add_option("--scratch-bytes", scratch_bytes, "its size");
  app.add_option("--scenario", scenario, "verify | bench | fuzz | flood | probe | forbidden-syscall")
      ->check(CLI::IsMember({"verify", "bench", "fuzz", "flood", "probe", "forbidden-syscall"}));
  app.add_option("--seed", config.seed);
  app.add_option("--passes", config.passes);
  app.add_option("--depth", config.depth);
  app.add_flag("--poll", config.poll, "poll the CQ with notifications off instead of waiting");
  app.add_option("--rw", rw, "bench: randread, randwrite or randrw")
      ->check(CLI::IsMember({"randread", "randwrite", "randrw"}));
  app.add_option("--bs", block_bytes, "bench: block size in bytes");
  app.add_option("--control", control_gpa, "bench: guest-physical address of the VMM's BenchControl word");
  app.add_option("--program", program_gpa, "fuzz: guest-physical address of the VMM's FuzzProgram");
  app.add_option("--probe-op", probe_op, "probe: the one raw SQE's opcode")->check(CLI::IsMember({"read", "write"}));
  app.add_option("--probe-opcode", probe_opcode, "probe: the raw opcode number instead (IORING_OP_*)");
  app.add_option("--probe-addr", probe_addr, "probe: its raw address (default: the scratch memory's)");
  app.add_option("--probe-offset", probe_offset, "probe: its disk offset");
  app.add_option("--syscall", forbidden, "forbidden-syscall: which one")
      ->check(CLI::IsMember({"openat", "io_uring_enter", "io_uring_register"}));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    quit(GuestExit::Usage);
  }
  std::vector<RegionArg> regions;
  for (const std::string& text : region_texts) {
    RegionArg r;
    if (!parse_region(text, r)) quit(GuestExit::Usage);
    regions.push_back(r);
  }

  std::uint64_t span = 0;
  const std::uintptr_t base = map_guest_memory(regions, span);
  if (base == 0) quit(GuestExit::Setup);
  // From here on the guest holds only the doorbell and the notification eventfds.
  ::close(rf::guest::kMemoryFd);
  for (int fd = 0; fd <= 2; ++fd) ::close(fd);
  if (rf::policy::install_guest_seccomp(rf::guest::kKickFd, rf::guest::kNotifyFd) != 0) quit(GuestExit::Seccomp);

  // --- Sandboxed: no system call but the doorbell, the notification read and exit_group. ---
  if (scenario == "forbidden-syscall") {
    const long nr = forbidden == "openat" ? SYS_openat : forbidden == "io_uring_enter" ? SYS_io_uring_enter : SYS_io_uring_register;
    ::syscall(nr, 0, 0, 0, 0, 0, 0);  // the filter kills the process here
    quit(GuestExit::Ok);              // reached only if the filter let it through
  }

  const rf::guest::Platform platform{nullptr, kick, wait_for_completion, base, span};
  rf::guest::ProcessReport report;
  const bool report_fits = report_gpa <= span && sizeof(report) <= span - report_gpa && report_gpa % 8 == 0;
  // SAFETY: [report_gpa, report_gpa + sizeof(report)) is inside the mapped span, 8-aligned.
  auto* out = report_fits ? reinterpret_cast<rf::guest::ProcessReport*>(base + report_gpa) : &report;
  *out = report;
  rf::guest::Driver driver;
  out->attach_status = driver.attach(platform, descriptor_gpa);
  out->decode_status = driver.decode_status();
  out->magic = rf::guest::kReportMagic;
  if (out->attach_status != rf::guest::AttachStatus::Ok) quit(GuestExit::Attach);

  GuestExit code = GuestExit::Ok;
  if (scenario == "verify") {
    config.scratch_gpa = scratch_gpa;
    config.scratch_bytes = scratch_bytes;
    if (rf::guest::run_verified_workload(driver, config, out->workload) != rf::guest::WorkloadStatus::Ok) {
      code = GuestExit::Workload;
    }
  } else if (scenario == "bench") {
    rf::guest::BenchConfig bench;
    bench.seed = config.seed;
    bench.block_bytes = block_bytes;
    bench.depth = config.depth;
    bench.poll = config.poll;
    bench.pattern = rw == "randwrite" ? rf::guest::BenchPattern::RandWrite
                    : rw == "randrw"  ? rf::guest::BenchPattern::RandRW
                                      : rf::guest::BenchPattern::RandRead;
    bench.control_gpa = control_gpa;
    bench.scratch_gpa = scratch_gpa;
    bench.scratch_bytes = scratch_bytes;
    if (rf::guest::run_bench_workload(driver, bench, out->bench) != rf::guest::BenchStatus::Ok) {
      code = GuestExit::Workload;
    }
  } else if (scenario == "fuzz") {
    if (rf::guest::run_fuzz_program(driver, platform, program_gpa, out->fuzz) != rf::guest::FuzzStatus::Ok) {
      code = GuestExit::Workload;
    }
  } else if (scenario == "flood") {
    flood(driver, scratch_gpa, config.depth);
  } else {  // probe: one raw SQE, whatever it asks for, to see what the kernel answers
    rf::abi::GuestSqe sqe{};
    std::uint64_t scratch_addr = 0;
    std::uint16_t buf_index = 0;
    driver.device_address(scratch_gpa, 4096, scratch_addr, buf_index);
    sqe.opcode = probe_opcode ? *probe_opcode : probe_op == "write" ? rf::abi::kOpWriteFixed : rf::abi::kOpReadFixed;
    sqe.flags = rf::abi::kSqeFixedFile;
    sqe.fd = 0;
    sqe.off = probe_offset;
    sqe.addr = probe_addr ? *probe_addr : scratch_addr;
    sqe.len = 4096;
    sqe.buf_index = buf_index;
    sqe.user_data = 0x50'52'4f'42'45;  // "PROBE"
    driver.queue_raw(sqe);
    driver.submit();
    rf::guest::Completion c;
    if (driver.reap_wait(&c, 1) == 1) {
      out->probe_result = c.result;
      out->probe_done = 1;
    }
  }
  out->counters = driver.counters();
  quit(code);
}
