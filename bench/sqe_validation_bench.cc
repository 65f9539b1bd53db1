// The mediated mode's per-SQE cost: the eight-rule check plus guest-physical → host translation
// (binary search over regions, then the fixed-buffer lookup) and building the kernel SQE, for
// guest RAM made of 1, 64 or 1024 regions. The SQEs are valid reads spread over all regions, in
// a shuffled order, so the search does not always hit the same branch.
#include <random>
#include <vector>

#include <benchmark/benchmark.h>

#include "mediated/sqe_validator.h"
#include "memory/guest_memory_builder.h"
#include "restrictions/policy_compiler.h"
#include "restrictions/policy_loader.h"

namespace {

void BM_ValidateAndTranslateSqe(benchmark::State& state) {
  const auto regions = static_cast<std::uint64_t>(state.range(0));
  const std::uint64_t page = rf::page_size();
  const std::uint64_t region_bytes = 16 * page;
  std::vector<rf::RegionLayout> layout;
  for (std::uint64_t i = 0; i < regions; ++i) {
    layout.push_back({rf::GuestAddress{i * 2 * region_bytes}, region_bytes, false});  // a gap after each
  }
  auto memory = rf::GuestMemoryBuilder::create(layout, rf::MemoryBacking::Anonymous);
  if (!memory) return state.SkipWithError(memory.error().message.c_str());
  auto policy = rf::policy::load_policy("blk-mediated");
  if (!policy) return state.SkipWithError("blk-mediated does not load");
  const rf::RestrictionSet set = rf::policy::compile_policy(*policy);
  const rf::DiskLimits disks[] = {{1ull << 30, 512, false}};
  const rf::ValidationContext context{&set, disks, memory->get(), 1u << 20};

  std::vector<rf::abi::GuestSqe> sqes(4096);
  std::mt19937_64 rng(42);
  for (auto& s : sqes) {
    s = rf::abi::GuestSqe{};
    s.opcode = rf::abi::kOpReadFixed;
    s.flags = rf::abi::kSqeFixedFile;
    s.off = (rng() % 1024) * 4096;
    s.len = 4096;
    s.addr = (rng() % regions) * 2 * region_bytes + (rng() % 15) * page;
  }
  std::size_t i = 0;
  for (auto _ : state) {
    auto request = rf::validate_guest_sqe(sqes[i++ & (sqes.size() - 1)], context);
    if (!request) return state.SkipWithError("a valid SQE was refused");
    rf::Sqe sqe = rf::kernel_sqe(*request);
    benchmark::DoNotOptimize(sqe);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_ValidateAndTranslateSqe)->ArgName("regions")->Arg(1)->Arg(64)->Arg(1024);

}  // namespace
