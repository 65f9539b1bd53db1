#include "cli/bench_scale.h"

#include <algorithm>
#include <iostream>

#include <fmt/format.h>

#include "cli/markdown_table.h"
#include "engine/guest_job.h"
#include "engine/scale.h"

namespace rf::cli {

namespace {

constexpr unsigned kSetupSamples = 50;
constexpr std::uint64_t kSetupRam = 16ull << 20;
// Ring set-up without pinning guest RAM must stay under this (Firecracker reports about 110 ms
// of extra device-creation time for its io_uring engine).
constexpr std::chrono::microseconds kSetupTarget{1000};

std::string ms(std::chrono::nanoseconds t) { return fmt::format("{:.3f}", std::chrono::duration<double, std::milli>(t).count()); }

void clear_progress() { std::cerr << "\r" << std::string(78, ' ') << "\r"; }

void progress(const std::string& what) {
  clear_progress();
  std::cerr << "ringfence bench: scale: " << what << std::flush;
}

bool print_setup(const BenchPlacement& where) {
  MarkdownTable table({"device", "total ms", "without buffer pinning", "create ring", "register files",
                       "register buffers", "restrict", "enable + self-check"});
  std::vector<std::string> verdicts;
  for (abi::Mode mode : {abi::Mode::Passthrough, abi::Mode::Mediated}) {
    const char* name = mode == abi::Mode::Passthrough ? "passthrough" : "mediated";
    progress(fmt::format("creating {} {} devices", kSetupSamples, name));
    auto samples = bench::measure_device_setup(mode, where.target_path, kSetupSamples, kSetupRam, where.sq_cpu);
    if (!samples) {
      std::cerr << fmt::format("\nringfence bench: scale: {} set-up: {}\n", name, samples.error());
      return false;
    }
    using T = const DeviceSetupTimes&;
    const auto without = bench::median_of(*samples, [](T t) { return t.without_buffers(); });
    table.add_row({name, ms(bench::median_of(*samples, [](T t) { return t.total; })), ms(without),
                   ms(bench::median_of(*samples, [](T t) { return t.create_ring; })),
                   ms(bench::median_of(*samples, [](T t) { return t.register_files; })),
                   ms(bench::median_of(*samples, [](T t) { return t.register_buffers; })),
                   ms(bench::median_of(*samples, [](T t) { return t.restrict_ring; })),
                   ms(bench::median_of(*samples, [](T t) { return t.enable; }))});
    verdicts.push_back(fmt::format("{} set-up without buffer pinning < 1 ms: {} ms, {}", name, ms(without),
                                   without < kSetupTarget ? "met" : "MISSED"));
  }
  clear_progress();
  std::cout << fmt::format("Device set-up, median of {} (ms; {} MiB of guest RAM, one disk):\n\n", kSetupSamples,
                           kSetupRam >> 20)
            << table.render() << "\n";
  for (const auto& v : verdicts) std::cout << v << "\n";
  std::cout << "\n";
  return true;
}

bool print_registration(const BenchPlacement& where) {
  MarkdownTable table({"guest RAM", "touched first", "touching ms", "IORING_REGISTER_BUFFERS ms", "ms per GiB"});
  for (std::uint64_t bytes : {256ull << 20, 1ull << 30}) {
    for (bool prefault : {false, true}) {
      progress(fmt::format("registering {} MiB of guest RAM{}", bytes >> 20, prefault ? ", touched first" : ""));
      auto r = bench::measure_registration(where.target_path, bytes, prefault);
      if (!r) {
        std::cerr << fmt::format("\nringfence bench: scale: registering {} MiB: {}\n", bytes >> 20, r.error());
        return false;
      }
      table.add_row({fmt::format("{} MiB", bytes >> 20), prefault ? "yes" : "no", prefault ? ms(r->prefault) : "–",
                     ms(r->register_buffers), fmt::format("{:.0f}", r->ms_per_gib())});
    }
  }
  clear_progress();
  std::cout << "Guest RAM registration (memfd guest RAM pinned as fixed buffers):\n\n" << table.render() << "\n";
  return true;
}

bool print_fleet(const BenchArgs& args, const BenchPlacement& where) {
  bench::GuestJobSpec spec;
  spec.job.block_bytes = args.bs;
  spec.job.depth = args.scale_iodepth;
  spec.job.pattern = where.pattern;
  spec.job.ramp = std::chrono::milliseconds(static_cast<long>(args.ramp_s * 1000));
  spec.job.runtime = std::chrono::milliseconds(static_cast<long>(args.runtime_s * 1000));
  spec.job.app_cpu = where.app_cpu;
  spec.job.sqpoll_cpu = where.sq_cpu;
  spec.target = where.target_path;
  spec.poll = false;  // many guests on one CPU: each sleeps until its notification
  MarkdownTable table({"guests", "own SQPOLL thread each: kIOPS", "(per guest)", "CPU µs per I/O",
                       "one shared SQPOLL thread: kIOPS", "(per guest)", "CPU µs per I/O"});
  for (unsigned guests : args.scale_guests) {
    std::vector<std::string> line{std::to_string(guests)};
    for (bool shared : {false, true}) {
      progress(fmt::format("{} guest(s), {} SQPOLL thread", guests, shared ? "one shared" : "an own"));
      auto fleet = bench::run_guest_fleet(spec, guests, shared);
      if (!fleet) {
        std::cerr << fmt::format("\nringfence bench: scale: {} guests{}: {}\n", guests, shared ? " (shared SQPOLL)" : "",
                                 fleet.error());
        return false;
      }
      const auto [lo, hi] = std::minmax_element(fleet->guests.begin(), fleet->guests.end(),
                                                [](const auto& a, const auto& b) { return a.iops() < b.iops(); });
      std::uint64_t errors = 0;
      for (const auto& g : fleet->guests) errors += g.errors;
      if (errors != 0) std::cerr << fmt::format("\nringfence bench: scale: {} guests: {} I/O errors\n", guests, errors);
      line.push_back(fmt::format("{:.1f}", fleet->total_iops() / 1000));
      line.push_back(fmt::format("{:.1f}–{:.1f}", lo->iops() / 1000, hi->iops() / 1000));
      line.push_back(fmt::format("{:.2f}", fleet->cpu_us_per_io()));
    }
    table.add_row(std::move(line));
  }
  clear_progress();
  std::cout << fmt::format("Aggregate kIOPS, passthrough-sqpoll guests (opt-in, unbounded) each on its own ring and device (rw={} bs={} iodepth={} "
                           "per guest, guests waiting for notifications; runtime {:.1f} s after {:.1f} s ramp; "
                           "guests on CPU {}, SQPOLL threads on CPU {}):\n\n",
                           bench::pattern_name(where.pattern), args.bs, args.scale_iodepth, args.runtime_s, args.ramp_s,
                           where.app_cpu ? std::to_string(*where.app_cpu) : "any",
                           where.sq_cpu ? std::to_string(*where.sq_cpu) : "any")
            << table.render() << "\n";
  return true;
}

}  // namespace

int run_scale(const BenchArgs& args, const BenchPlacement& where) {
  const unsigned most = args.scale_guests.empty() ? 0 : *std::max_element(args.scale_guests.begin(), args.scale_guests.end());
  if (most > where.cpus) {
    std::cerr << fmt::format("ringfence bench: warning: up to {} guests and {} SQPOLL threads share {} CPUs\n", most, most,
                             where.cpus);
  }
  std::cout << "## Scale\n\n";
  if (!print_setup(where) || !print_registration(where) || !print_fleet(args, where)) return 1;
  return 0;
}

}  // namespace rf::cli
