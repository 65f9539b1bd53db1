#include "guest/bench_workload.h"

#include "guest/pattern.h"
#include "guest/workload.h"
#include "util/cpu_relax.h"
#include "util/cycle_counter.h"

namespace rf::guest {

namespace {

class BenchRun {
 public:
  BenchRun(Driver& driver, const BenchConfig& config, BenchReport& report, const std::uint32_t* phase,
           std::uint64_t* histogram, std::uint64_t blocks)
      : driver_(driver), config_(config), report_(report), phase_(phase), histogram_(histogram), blocks_(blocks),
        rng_{splitmix64(config.seed) | 1} {}

  BenchStatus run() {
    for (std::uint32_t slot = 0; slot < report_.depth; ++slot) free_[free_count_++] = slot;
    Completion done[kWorkloadMaxDepth];
    while (true) {
      // Issue every free slot the SQ takes. QueueFull with slots free means the device has not
      // yet moved the SQ head past SQEs whose completions already came: retry after reaping.
      while (!stopping_ && free_count_ != 0) {
        const RequestStatus status = issue(free_[free_count_ - 1]);
        if (status == RequestStatus::QueueFull) break;
        if (status != RequestStatus::Ok) {
          report_.first_refusal = status;
          driver_.submit();
          drain();
          return BenchStatus::Refused;
        }
        --free_count_;
      }
      driver_.submit();
      if (driver_.in_flight() == 0) {
        if (stopping_) return BenchStatus::Ok;
        cpu_relax();  // the SQ head has yet to move
        follow_phase();
        continue;
      }
      const std::uint32_t n = reap(done);
      const unsigned long long now = read_cycle_counter();
      for (std::uint32_t i = 0; i < n; ++i) complete(done[i], now);
      follow_phase();
    }
  }

 private:
  // Polls until at least one completion, or, with slots waiting for SQ space, returns 0 after
  // one look; waits for a notification when not polling.
  std::uint32_t reap(Completion* done) {
    if (!config_.poll) return driver_.reap_wait(done, kWorkloadMaxDepth);
    std::uint32_t n = 0;
    while ((n = driver_.reap(done, kWorkloadMaxDepth)) == 0 && (free_count_ == 0 || stopping_)) cpu_relax();
    return n;
  }

  void drain() {
    Completion done[kWorkloadMaxDepth];
    while (driver_.in_flight() != 0) {
      if (driver_.reap(done, kWorkloadMaxDepth) == 0) cpu_relax();
    }
  }

  RequestStatus issue(std::uint32_t slot) {
    const bool write = config_.pattern == BenchPattern::RandWrite ||
                       (config_.pattern == BenchPattern::RandRW && (rng_.next() & 1) != 0);
    const std::uint64_t offset = (rng_.next() % blocks_) * config_.block_bytes;
    const std::uint64_t gpa = config_.scratch_gpa + kBenchDataOffset + std::uint64_t{slot} * config_.block_bytes;
    const unsigned long long now = read_cycle_counter();
    const RequestStatus status = driver_.queue({write ? Op::Write : Op::Read, config_.disk, offset, gpa,
                                                config_.block_bytes, slot});
    if (status == RequestStatus::Ok) {
      is_write_[slot] = write;
      started_[slot] = now;
    }
    return status;
  }

  void complete(const Completion& c, unsigned long long now) {
    // The tag is the slot we gave the request; a device that hands back another, or more
    // completions than we have requests in flight, is an error.
    const std::uint64_t slot = c.tag;
    const bool ours = slot < report_.depth && free_count_ < report_.depth;
    if ((!ours || c.result != static_cast<std::int32_t>(config_.block_bytes)) && report_.errors++ == 0) {
      report_.first_error = c.result;
    }
    if (!ours) return;
    free_[free_count_++] = static_cast<std::uint32_t>(slot);
    if (!measuring_ || stopping_) return;
    ++histogram_[buckets::bucket_of(now - started_[slot])];
    ++report_.ios;
    ++(is_write_[slot] ? report_.writes : report_.reads);
  }

  void follow_phase() {
    const auto phase = static_cast<BenchPhase>(__atomic_load_n(phase_, __ATOMIC_ACQUIRE));
    if (phase == BenchPhase::Measure && !measuring_) {
      measuring_ = true;
      report_.ticks_start = read_cycle_counter();
    } else if (phase == BenchPhase::Stop && !stopping_) {
      stopping_ = true;
      report_.ticks_end = read_cycle_counter();
      if (!measuring_) report_.ticks_start = report_.ticks_end;  // never measured: an empty run
    }
  }

  Driver& driver_;
  const BenchConfig& config_;
  BenchReport& report_;
  const std::uint32_t* phase_;
  std::uint64_t* histogram_;
  std::uint64_t blocks_;
  Xorshift rng_;
  bool measuring_ = false;
  bool stopping_ = false;
  std::uint32_t free_[kWorkloadMaxDepth] = {};  // slots with no request in flight
  std::uint32_t free_count_ = 0;
  unsigned long long started_[kWorkloadMaxDepth] = {};
  bool is_write_[kWorkloadMaxDepth] = {};
};

}  // namespace

std::uint64_t bench_scratch_bytes(const BenchConfig& config) {
  const std::uint32_t depth = config.depth < kWorkloadMaxDepth ? config.depth : kWorkloadMaxDepth;
  return kBenchDataOffset + std::uint64_t{depth} * config.block_bytes;
}

BenchStatus run_bench_workload(Driver& driver, const BenchConfig& config, BenchReport& report) {
  report = BenchReport{};
  const auto finish = [&report](BenchStatus status) {
    report.status = status;
    return status;
  };
  if (!kHaveCycleCounter || config.disk >= driver.disk_count()) return finish(BenchStatus::BadConfig);
  const abi::DiskEntry& disk = driver.disk(config.disk);
  if (config.block_bytes == 0 || disk.logical_block_size == 0 || config.block_bytes % disk.logical_block_size != 0 ||
      config.block_bytes > disk.max_transfer || disk.size_bytes < config.block_bytes || config.depth == 0 ||
      config.pattern > BenchPattern::RandRW) {
    return finish(BenchStatus::BadConfig);
  }
  if (config.pattern != BenchPattern::RandRead && (disk.flags & abi::kDiskReadOnly) != 0) {
    return finish(BenchStatus::BadConfig);
  }
  std::uint32_t depth = config.depth < driver.depth() ? config.depth : driver.depth();
  if (depth > kWorkloadMaxDepth) depth = kWorkloadMaxDepth;
  report.depth = depth;

  const std::uint64_t needed = bench_scratch_bytes(config);
  unsigned char* scratch = driver.guest_pointer(config.scratch_gpa, needed);
  unsigned char* control = driver.guest_pointer(config.control_gpa, sizeof(BenchControl));
  if (scratch == nullptr || control == nullptr || config.scratch_bytes < needed || config.scratch_gpa % 4096 != 0 ||
      config.control_gpa % 4 != 0) {
    return finish(BenchStatus::NoScratch);
  }
  // SAFETY: guest_pointer checked both ranges lie in guest memory; the scratch is page-aligned
  // and the control word 4-byte aligned.
  auto* histogram = reinterpret_cast<std::uint64_t*>(scratch);
  for (unsigned b = 0; b < buckets::kCount; ++b) histogram[b] = 0;
  // SAFETY: as above: a 4-byte-aligned control word inside guest memory.
  const auto* phase = reinterpret_cast<const std::uint32_t*>(control);

  driver.set_notifications(!config.poll);
  BenchRun run(driver, config, report, phase, histogram, disk.size_bytes / config.block_bytes);
  const BenchStatus status = run.run();
  driver.set_notifications(true);
  return finish(status);
}

const char* bench_status_name(BenchStatus status) {
  switch (status) {
    case BenchStatus::Ok: return "ok";
    case BenchStatus::BadConfig: return "bad configuration";
    case BenchStatus::NoScratch: return "scratch or control memory too small or outside guest memory";
    case BenchStatus::Refused: return "the driver refused a request";
  }
  return "unknown";
}

}  // namespace rf::guest
