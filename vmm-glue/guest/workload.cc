#include "guest/workload.h"

#include "guest/pattern.h"
#include "util/cpu_relax.h"

namespace rf::guest {

namespace {

constexpr std::uint64_t kFlushTag = ~std::uint64_t{0};
constexpr unsigned kSlotBits = 16;  // tag = block << 16 | slot

class Run {
 public:
  Run(Driver& driver, const WorkloadConfig& config, WorkloadReport& report, unsigned char* slots,
      std::uint32_t* order, std::uint32_t depth)
      : driver_(driver), config_(config), report_(report), slots_(slots), order_(order), depth_(depth) {
    for (std::uint32_t i = 0; i < depth_; ++i) free_[i] = static_cast<std::uint16_t>(depth_ - 1 - i);
    free_count_ = depth_;
  }

  WorkloadStatus pass(std::uint32_t pass_index) {
    shuffle(pass_index * 2 + 1);
    if (!blocks(pass_index, Op::Write)) return WorkloadStatus::Refused;
    if (!flush()) return WorkloadStatus::Refused;
    shuffle(pass_index * 2 + 2);
    if (!blocks(pass_index, Op::Read)) return WorkloadStatus::Refused;
    return WorkloadStatus::Ok;
  }

 private:
  unsigned char* slot(std::uint32_t s) const { return slots_ + std::uint64_t{s} * config_.block_bytes; }
  std::uint64_t slot_gpa(std::uint32_t s) const { return config_.scratch_gpa + std::uint64_t{s} * config_.block_bytes; }

  // Fisher-Yates over the block order, seeded per pass and phase.
  void shuffle(std::uint32_t salt) {
    Xorshift rng{splitmix64(config_.seed ^ (std::uint64_t{salt} << 32)) | 1};
    for (std::uint64_t i = 0; i < report_.blocks; ++i) order_[i] = static_cast<std::uint32_t>(i);
    for (std::uint64_t i = report_.blocks - 1; i > 0; --i) {
      const std::uint64_t j = rng.next() % (i + 1);
      const std::uint32_t t = order_[i];
      order_[i] = order_[j];
      order_[j] = t;
    }
  }

  void fill(std::uint32_t s, std::uint32_t pass_index, std::uint64_t block) const {
    auto* words = reinterpret_cast<std::uint64_t*>(slot(s));  // SAFETY: slots are page-aligned guest RAM
    for (std::uint64_t w = 0; w < config_.block_bytes / 8; ++w) words[w] = pattern_word(config_.seed, pass_index, block, w);
  }

  bool matches(std::uint32_t s, std::uint32_t pass_index, std::uint64_t block) const {
    const auto* words = reinterpret_cast<const std::uint64_t*>(slot(s));  // SAFETY: as in fill()
    for (std::uint64_t w = 0; w < config_.block_bytes / 8; ++w) {
      if (words[w] != pattern_word(config_.seed, pass_index, block, w)) return false;
    }
    return true;
  }

  void error(std::uint64_t tag, std::int32_t result) {
    if (report_.errors++ == 0) {
      report_.first_error_tag = tag;
      report_.first_error_result = result;
    }
  }

  void complete(const Completion& c, std::uint32_t pass_index, Op op) {
    if (c.tag == kFlushTag) {
      if (c.result != 0) error(c.tag, c.result);
      return;
    }
    const auto s = static_cast<std::uint32_t>(c.tag & ((1u << kSlotBits) - 1));
    const std::uint64_t block = c.tag >> kSlotBits;
    if (s >= depth_ || free_count_ >= depth_) {  // not a tag we issued
      error(c.tag, c.result);
      return;
    }
    if (c.result != static_cast<std::int32_t>(config_.block_bytes)) {
      error(c.tag, c.result);
    } else if (op == Op::Read && !matches(s, pass_index, block)) {
      ++report_.mismatches;
    }
    free_[free_count_++] = static_cast<std::uint16_t>(s);
  }

  void drain_some(std::uint32_t pass_index, Op op) {
    Completion done[kWorkloadMaxDepth];
    std::uint32_t n = 0;
    if (config_.poll) {
      while ((n = driver_.reap(done, kWorkloadMaxDepth)) == 0 && driver_.in_flight() != 0) cpu_relax();
    } else {
      n = driver_.reap_wait(done, kWorkloadMaxDepth);
    }
    for (std::uint32_t i = 0; i < n; ++i) complete(done[i], pass_index, op);
  }

  bool refused(RequestStatus status) {
    report_.first_refusal = status;
    return false;
  }

  bool blocks(std::uint32_t pass_index, Op op) {
    std::uint64_t next = 0;
    while (next < report_.blocks || driver_.in_flight() != 0) {
      while (next < report_.blocks && free_count_ != 0) {
        const std::uint32_t s = free_[free_count_ - 1];
        const std::uint64_t block = order_[next];
        if (op == Op::Write) fill(s, pass_index, block);
        const Request request{op, config_.disk, block * config_.block_bytes, slot_gpa(s), config_.block_bytes,
                              (block << kSlotBits) | s};
        const RequestStatus status = driver_.queue(request);
        if (status == RequestStatus::QueueFull) break;  // the SQ head has not moved yet
        if (status != RequestStatus::Ok) return refused(status);
        --free_count_;
        ++next;
        ++(op == Op::Write ? report_.writes : report_.reads);
      }
      driver_.submit();
      if (driver_.in_flight() != 0) drain_some(pass_index, op);
    }
    return true;
  }

  bool flush() {
    const Request request{Op::Flush, config_.disk, 0, 0, 0, kFlushTag};
    RequestStatus status;
    while ((status = driver_.queue(request)) == RequestStatus::QueueFull) cpu_relax();
    if (status != RequestStatus::Ok) return refused(status);
    ++report_.flushes;
    driver_.submit();
    while (driver_.in_flight() != 0) drain_some(0, Op::Flush);
    return true;
  }

  Driver& driver_;
  const WorkloadConfig& config_;
  WorkloadReport& report_;
  unsigned char* slots_;
  std::uint32_t* order_;
  std::uint32_t depth_;
  std::uint16_t free_[kWorkloadMaxDepth];
  std::uint32_t free_count_ = 0;
};

}  // namespace

const char* workload_status_name(WorkloadStatus status) {
  switch (status) {
    case WorkloadStatus::Ok: return "ok";
    case WorkloadStatus::BadConfig: return "bad configuration";
    case WorkloadStatus::NoScratch: return "scratch memory too small or outside guest memory";
    case WorkloadStatus::Refused: return "the driver refused a request";
    case WorkloadStatus::IoErrors: return "I/O errors";
    case WorkloadStatus::Mismatch: return "data mismatch";
  }
  return "unknown";
}

std::uint64_t workload_scratch_bytes(const WorkloadConfig& config, std::uint64_t disk_bytes) {
  const std::uint64_t blocks = config.block_bytes == 0 ? 0 : disk_bytes / config.block_bytes;
  return std::uint64_t{kWorkloadMaxDepth} * config.block_bytes + blocks * sizeof(std::uint32_t);
}

WorkloadStatus run_verified_workload(Driver& driver, const WorkloadConfig& config, WorkloadReport& report) {
  report = WorkloadReport{};
  const auto finish = [&report](WorkloadStatus status) {
    report.status = status;
    return status;
  };
  if (config.disk >= driver.disk_count()) return finish(WorkloadStatus::BadConfig);
  const abi::DiskEntry& disk = driver.disk(config.disk);
  if (config.block_bytes == 0 || config.block_bytes % 8 != 0 || config.block_bytes % disk.logical_block_size != 0 ||
      config.block_bytes > disk.max_transfer || config.passes == 0) {
    return finish(WorkloadStatus::BadConfig);
  }
  report.blocks = disk.size_bytes / config.block_bytes;
  if (report.blocks == 0 || report.blocks > (std::uint64_t{1} << 32)) return finish(WorkloadStatus::BadConfig);

  std::uint32_t depth = config.depth < driver.depth() ? config.depth : driver.depth();
  if (depth > kWorkloadMaxDepth) depth = kWorkloadMaxDepth;
  if (depth == 0) return finish(WorkloadStatus::BadConfig);
  const std::uint64_t needed = workload_scratch_bytes(config, disk.size_bytes);
  unsigned char* scratch = driver.guest_pointer(config.scratch_gpa, needed);
  if (config.scratch_bytes < needed || scratch == nullptr || config.scratch_gpa % 8 != 0) {
    return finish(WorkloadStatus::NoScratch);
  }
  const std::uint64_t slots_bytes = std::uint64_t{kWorkloadMaxDepth} * config.block_bytes;
  // SAFETY: [scratch, scratch + needed) is guest memory (guest_pointer checked), 8-aligned.
  auto* order = reinterpret_cast<std::uint32_t*>(scratch + slots_bytes);

  driver.set_notifications(!config.poll);
  Run run(driver, config, report, scratch, order, depth);
  for (std::uint32_t p = 0; p < config.passes; ++p) {
    if (run.pass(p) != WorkloadStatus::Ok) return finish(WorkloadStatus::Refused);
    ++report.passes;
  }
  driver.set_notifications(true);
  if (report.errors != 0) return finish(WorkloadStatus::IoErrors);
  if (report.mismatches != 0) return finish(WorkloadStatus::Mismatch);
  return finish(WorkloadStatus::Ok);
}

}  // namespace rf::guest
