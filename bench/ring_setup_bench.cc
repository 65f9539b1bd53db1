// Micro-benchmarks for the foundation: what it costs to create a restricted, verified ring
// (create with R_DISABLED, register a file and a buffer, register restrictions, enable,
// self-check), and to load and lint a policy. Never run in CI as a gate; see README.
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>

#include <benchmark/benchmark.h>

#include "audit/audit_ring.h"
#include "restrictions/policy_compiler.h"
#include "restrictions/policy_loader.h"
#include "ring/probe.h"
#include "ring/setup.h"
#include "util/mmap_region.h"
#include "util/unique_fd.h"

namespace {

rf::RestrictionSet blk_passthrough() {
  auto policy = rf::policy::load_checked_policy("blk-passthrough", nullptr);
  return rf::policy::compile_policy(policy->policy);
}

// The whole set-up sequence a VMM runs per device, with the disk and memory prepared beforehand.
// In the SQPOLL shape, wall time includes waiting for the new SQPOLL thread to run the
// self-check's probe SQE. Teardown (closing the ring: with SQPOLL, the kernel stops and joins
// its thread) is not in the timed part; its mean wall time is the teardown_us counter. Every
// iteration sets the ring up in the same caller memory, as a VMM that re-creates a device in one
// guest window does: RingCore gives that memory fresh pages each time (ring/fresh_ring_memory.h),
// so a ring still being freed cannot leave its CQ tail in the next one.
void BM_RestrictedRingSetup(benchmark::State& state) {
  const bool guest_shared = state.range(0) != 0;
  const std::size_t buffer_bytes = static_cast<std::size_t>(state.range(1));
  const rf::RestrictionSet set = blk_passthrough();
  rf::UniqueFd disk(::memfd_create("bench-disk", MFD_CLOEXEC));
  if (::ftruncate(disk.get(), 1 << 20) != 0) return state.SkipWithError("memfd");

  rf::RingOptions options;
  options.sq_entries = 64;
  rf::RingMemoryLayout layout;  // stays empty for a private ring
  if (guest_shared) {
    options.sqpoll = rf::SqPollOptions{std::nullopt, std::chrono::milliseconds(10)};
    auto l = rf::ring_memory_layout(options);
    if (!l) return state.SkipWithError(l.error().message.c_str());
    layout = *l;
  }
  const std::size_t ring_bytes = layout.rings_bytes + layout.sqes_bytes;
  auto ram = rf::MmapRegion::map_anonymous(ring_bytes + buffer_bytes);
  if (!ram) return state.SkipWithError(ram.error().message.c_str());
  if (guest_shared) {
    options.caller_memory = rf::CallerRingMemory{ram->span().first(layout.rings_bytes),
                                                 ram->span().subspan(layout.rings_bytes, layout.sqes_bytes)};
  }
  const rf::BufferRegion region{ram->bytes() + ring_bytes, buffer_bytes};
  const int files[] = {disk.get()};

  std::chrono::nanoseconds teardown{0};
  for (auto _ : state) {
    auto disabled = rf::DisabledRing::create(options);
    if (!disabled) return state.SkipWithError(disabled.error().message.c_str());
    if (!disabled->register_files(files)) return state.SkipWithError("register_files");
    if (!disabled->register_buffers({&region, 1})) return state.SkipWithError("register_buffers");
    auto restricted = std::move(*disabled).restrict(set);
    if (!restricted) return state.SkipWithError(restricted.error().message.c_str());
    auto ring = std::move(*restricted).enable();
    if (!ring) return state.SkipWithError(ring.error().message.c_str());
    benchmark::DoNotOptimize(ring->fd());
    state.PauseTiming();
    const auto closing = std::chrono::steady_clock::now();
    ring->close();
    teardown += std::chrono::steady_clock::now() - closing;
    state.ResumeTiming();
  }
  state.counters["teardown_us"] = benchmark::Counter(std::chrono::duration<double, std::micro>(teardown).count(),
                                                     benchmark::Counter::kAvgIterations);
  state.SetLabel(guest_shared ? "SQPOLL + rings in guest RAM" : "private ring");
}
BENCHMARK(BM_RestrictedRingSetup)
    ->ArgNames({"guest_shared", "buffer_bytes"})
    ->Args({0, 1 << 20})
    ->Args({1, 1 << 20})
    ->Args({0, 256 << 20})
    ->Unit(benchmark::kMicrosecond);

void BM_PolicyLoadAndLint(benchmark::State& state) {
  const rf::KernelOpcodeSupport& kernel = rf::running_kernel_opcode_support();
  for (auto _ : state) {
    auto policy = rf::policy::load_checked_policy("blk-passthrough", &kernel);
    benchmark::DoNotOptimize(policy);
  }
}
BENCHMARK(BM_PolicyLoadAndLint)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
