// `ringfence bench --scale`: device set-up time, guest RAM registration per GiB, and aggregate
// kIOPS with 1..N passthrough guests, each on its own ring, with and without a shared SQPOLL
// thread. Markdown on stdout, progress on stderr.
#pragma once

#include <optional>
#include <string>

#include "cli/bench_command.h"
#include "engine/block_job.h"

namespace rf::cli {

// Where the jobs of a bench run go.
struct BenchPlacement {
  bench::Pattern pattern = bench::Pattern::RandRead;
  std::string target_path;
  unsigned cpus = 0;
  std::optional<unsigned> app_cpu, sq_cpu;
};

int run_scale(const BenchArgs& args, const BenchPlacement& where);

}  // namespace rf::cli
