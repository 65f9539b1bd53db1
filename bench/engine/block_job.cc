#include "engine/block_job.h"

#include <liburing.h>

#include <cerrno>
#include <cstring>
#include <random>
#include <vector>

#include <fmt/format.h>

#include "engine/cpu_times.h"
#include "engine/scoped_pin.h"
#include "restrictions/policy_compiler.h"
#include "restrictions/policy_loader.h"
#include "ring/setup.h"
#include "util/cpu_relax.h"
#include "util/mmap_region.h"

namespace rf::bench {

namespace {

using Clock = std::chrono::steady_clock;

struct Completion {
  std::uint64_t slot = 0;
  std::int32_t res = 0;
};

// SQPOLL rows reap by polling the CQ in user space, as fio's io_uring engine does with
// sqthread_poll (and as the proposal's polling guest did): no system call on the data path.
template <typename Peek>
Result<Completion, std::string> spin_for_completion(Peek&& peek) {
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  for (unsigned spins = 0;; ++spins) {
    if (auto c = peek()) return *c;
    cpu_relax();
    if ((spins & 0xfff) == 0 && Clock::now() > deadline) {
      return unexpected(std::string("no completion within 30 s"));
    }
  }
}

// Spins (up to a second) until `try_slot` gets an SQ slot: for SQPOLL rings, whose kernel thread
// frees slots a moment after it posts their completions.
template <typename TrySlot>
auto wait_for_sq_slot(TrySlot&& try_slot) {
  const auto deadline = Clock::now() + std::chrono::seconds(1);
  for (unsigned spins = 0;; ++spins) {
    auto slot = try_slot();
    if (slot || ((spins & 0xff) == 0 && Clock::now() > deadline)) return slot;
    cpu_relax();
  }
}

// The baseline rows: plain io_uring through liburing, no restrictions, nothing of ringfence's.
class LiburingQueue {
 public:
  static Result<std::unique_ptr<LiburingQueue>, std::string> create(HostRow row, const JobSpec& spec, std::byte* buffer,
                                                                    std::size_t buffer_bytes) {
    auto q = std::unique_ptr<LiburingQueue>(new LiburingQueue);
    io_uring_params params{};
    if (row != HostRow::Bare) {
      params.flags |= IORING_SETUP_SQPOLL;
      params.sq_thread_idle = 1000;
      if (spec.sqpoll_cpu) {
        params.flags |= IORING_SETUP_SQ_AFF;
        params.sq_thread_cpu = *spec.sqpoll_cpu;
      }
    }
    if (row == HostRow::BareSqpollIopoll) params.flags |= IORING_SETUP_IOPOLL;
    const unsigned entries = spec.depth < 8 ? 8 : spec.depth;
    if (const int rc = io_uring_queue_init_params(entries, &q->ring_, &params); rc < 0) {
      return unexpected(fmt::format("io_uring_queue_init: {}", std::strerror(-rc)));
    }
    q->live_ = true;
    q->sqpoll_ = row != HostRow::Bare;
    if (const int rc = io_uring_register_files(&q->ring_, &spec.fd, 1); rc < 0) {
      return unexpected(fmt::format("registering the target: {}", std::strerror(-rc)));
    }
    const iovec iov{buffer, buffer_bytes};
    if (const int rc = io_uring_register_buffers(&q->ring_, &iov, 1); rc < 0) {
      return unexpected(fmt::format("registering the buffer: {}", std::strerror(-rc)));
    }
    return q;
  }
  ~LiburingQueue() {
    if (live_) io_uring_queue_exit(&ring_);
  }
  LiburingQueue(const LiburingQueue&) = delete;
  LiburingQueue& operator=(const LiburingQueue&) = delete;

  bool push(bool write, std::byte* buf, std::uint32_t len, std::uint64_t off, std::uint64_t slot) {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    // An SQPOLL thread posts a batch's completions before it advances the SQ head: a slot whose
    // CQE is already reaped may not be free yet.
    if (sqe == nullptr && sqpoll_) sqe = wait_for_sq_slot([this] { return io_uring_get_sqe(&ring_); });
    if (sqe == nullptr) return false;
    if (write) {
      io_uring_prep_write_fixed(sqe, 0, buf, len, off, 0);
    } else {
      io_uring_prep_read_fixed(sqe, 0, buf, len, off, 0);
    }
    sqe->flags |= IOSQE_FIXED_FILE;
    sqe->user_data = slot;
    return true;
  }
  Result<void, std::string> submit() {
    const int rc = io_uring_submit(&ring_);
    if (rc < 0) return unexpected(fmt::format("io_uring_submit: {}", std::strerror(-rc)));
    return {};
  }
  Result<Completion, std::string> wait() {
    if (sqpoll_) return spin_for_completion([this] { return peek(); });
    io_uring_cqe* cqe = nullptr;
    const int rc = io_uring_wait_cqe(&ring_, &cqe);
    if (rc < 0) return unexpected(fmt::format("io_uring_wait_cqe: {}", std::strerror(-rc)));
    const Completion c{cqe->user_data, cqe->res};
    io_uring_cqe_seen(&ring_, cqe);
    return c;
  }
  std::optional<Completion> peek() {
    io_uring_cqe* cqe = nullptr;
    if (io_uring_peek_cqe(&ring_, &cqe) != 0 || cqe == nullptr) return std::nullopt;
    const Completion c{cqe->user_data, cqe->res};
    io_uring_cqe_seen(&ring_, cqe);
    return c;
  }

 private:
  LiburingQueue() = default;
  io_uring ring_{};
  bool live_ = false;
  bool sqpoll_ = false;
};

// The restricted row: ringfence's builder, SQPOLL, R_DISABLED, blk-passthrough, self-check.
class RestrictedQueue {
 public:
  static Result<std::unique_ptr<RestrictedQueue>, std::string> create(const JobSpec& spec, std::byte* buffer,
                                                                      std::size_t buffer_bytes) {
    auto policy = policy::load_policy("blk-passthrough");
    if (!policy) return unexpected(std::string("the built-in policy blk-passthrough does not load"));
    RingOptions options;
    options.sq_entries = spec.depth < 8 ? 8 : spec.depth;
    options.sqpoll = SqPollOptions{spec.sqpoll_cpu, std::chrono::milliseconds(1000)};
    auto disabled = DisabledRing::create(options);
    if (!disabled) return unexpected(disabled.error().message);
    const int fds[] = {spec.fd};
    if (auto r = disabled->register_files(fds); !r) return unexpected(r.error().message);
    const BufferRegion region{buffer, buffer_bytes};
    if (auto r = disabled->register_buffers({&region, 1}); !r) return unexpected(r.error().message);
    auto restricted = std::move(*disabled).restrict(policy::compile_policy(*policy));
    if (!restricted) return unexpected(restricted.error().message);
    auto ring = std::move(*restricted).enable();
    if (!ring) return unexpected(ring.error().message);
    return std::unique_ptr<RestrictedQueue>(new RestrictedQueue(std::move(*ring)));
  }

  bool push(bool write, std::byte* buf, std::uint32_t len, std::uint64_t off, std::uint64_t slot) {
    const FileRef file = FileRef::fixed({0});
    const Sqe sqe = write ? Sqe::write_fixed(file, buf, len, off, BufferIndex{0})
                          : Sqe::read_fixed(file, buf, len, off, BufferIndex{0});
    Sqe copy = sqe;
    copy.with_user_data(slot);
    // SQPOLL: a slot whose CQE is reaped may not be free yet (see LiburingQueue::push).
    return ring_.try_push(copy) || wait_for_sq_slot([&] { return ring_.try_push(copy); });
  }
  Result<void, std::string> submit() {
    if (auto r = ring_.submit(); !r) return unexpected(r.error().message);
    return {};
  }
  Result<Completion, std::string> wait() { return spin_for_completion([this] { return peek(); }); }
  std::optional<Completion> peek() {
    auto cqe = ring_.pop_completion();
    if (!cqe) return std::nullopt;
    return Completion{cqe->user_data, cqe->res};
  }

 private:
  explicit RestrictedQueue(Ring ring) : ring_(std::move(ring)) {}
  Ring ring_;
};

// Keeps `depth` I/Os in flight until the runtime is over; the same loop for every row.
template <typename Queue>
Result<JobResult, std::string> drive(Queue& q, const JobSpec& spec, std::byte* buffer) {
  JobResult result;
  std::mt19937_64 rng(spec.seed);
  const std::uint64_t blocks = spec.size_bytes / spec.block_bytes;
  std::vector<Clock::time_point> started(spec.depth);
  std::vector<bool> is_write(spec.depth);
  const auto issue = [&](std::uint32_t slot) {
    const bool write = spec.pattern == Pattern::RandWrite || (spec.pattern == Pattern::RandRW && (rng() & 1) != 0);
    const std::uint64_t offset = (rng() % blocks) * spec.block_bytes;
    is_write[slot] = write;
    started[slot] = Clock::now();
    return q.push(write, buffer + std::uint64_t{slot} * spec.block_bytes, spec.block_bytes, offset, slot);
  };
  for (std::uint32_t slot = 0; slot < spec.depth; ++slot) {
    if (!issue(slot)) return unexpected(std::string("the submission queue is smaller than the depth"));
  }
  RF_TRY_VOID(q.submit());

  const Clock::time_point ramp_end = Clock::now() + spec.ramp;
  bool measuring = spec.ramp.count() == 0;
  Clock::time_point measure_start = Clock::now();
  Clock::time_point end = measure_start + spec.runtime;  // set again when the ramp ends
  CpuTimes cpu_start = own_cpu_times();
  std::uint32_t in_flight = spec.depth;
  bool done = false;
  std::vector<std::uint32_t> reissue;
  reissue.reserve(spec.depth);
  while (in_flight != 0) {
    auto first = q.wait();
    if (!first) return unexpected(std::move(first).error());
    std::optional<Completion> c = *first;
    while (c) {
      const Clock::time_point now = Clock::now();
      --in_flight;
      if (c->slot >= spec.depth) return unexpected(fmt::format("a completion for unknown slot {}", c->slot));
      if (c->res != static_cast<std::int32_t>(spec.block_bytes)) {
        if (result.errors++ == 0) result.first_error = c->res;
      }
      if (measuring && !done) {
        result.latency.record(static_cast<std::uint64_t>((now - started[c->slot]).count()));
        ++result.ios;
        ++(is_write[c->slot] ? result.writes : result.reads);
      }
      if (!done) reissue.push_back(static_cast<std::uint32_t>(c->slot));
      c = q.peek();
    }
    const Clock::time_point now = Clock::now();
    if (!measuring && now >= ramp_end) {
      measuring = true;
      measure_start = now;
      end = now + spec.runtime;
      cpu_start = own_cpu_times();
    }
    if (measuring && !done && now >= end) {
      done = true;
      result.measured = now - measure_start;
      const CpuTimes used = own_cpu_times() - cpu_start;
      result.cpu_user = used.user;
      result.cpu_system = used.system;
      result.cpu = used.total();
      reissue.clear();  // let what is in flight drain
    }
    for (std::uint32_t slot : reissue) {
      if (!issue(slot)) return unexpected(std::string("the submission queue is full"));
      ++in_flight;
    }
    if (!reissue.empty()) RF_TRY_VOID(q.submit());
    reissue.clear();
  }
  return result;
}

}  // namespace

std::string_view pattern_name(Pattern pattern) {
  switch (pattern) {
    case Pattern::RandRead: return "randread";
    case Pattern::RandWrite: return "randwrite";
    case Pattern::RandRW: return "randrw";
  }
  return "?";
}

std::optional<Pattern> pattern_from_name(std::string_view name) {
  for (Pattern p : {Pattern::RandRead, Pattern::RandWrite, Pattern::RandRW}) {
    if (pattern_name(p) == name) return p;
  }
  return std::nullopt;
}

std::string_view host_row_name(HostRow row) {
  switch (row) {
    case HostRow::Bare: return "bare";
    case HostRow::BareSqpoll: return "bare-sqpoll";
    case HostRow::BareSqpollIopoll: return "bare-sqpoll-iopoll";
    case HostRow::Restricted: return "restricted";
  }
  return "?";
}

double JobResult::iops() const {
  const double s = std::chrono::duration<double>(measured).count();
  return s > 0 ? static_cast<double>(ios) / s : 0.0;
}

double JobResult::cpu_us_per_io() const {
  return ios == 0 ? 0.0 : std::chrono::duration<double, std::micro>(cpu).count() / static_cast<double>(ios);
}

Result<JobResult, std::string> run_host_job(HostRow row, const JobSpec& spec) {
  if (spec.fd < 0 || spec.depth == 0 || spec.block_bytes == 0 || spec.size_bytes < spec.block_bytes) {
    return unexpected(std::string("the job needs a target, a depth and a block size no larger than the target"));
  }
  // One block of buffer per slot, page-aligned for O_DIRECT, registered as fixed buffer 0.
  const std::size_t buffer_bytes = std::size_t{spec.depth} * spec.block_bytes;
  auto buffer = MmapRegion::map_anonymous(buffer_bytes);
  if (!buffer) return unexpected(buffer.error().message);
  std::memset(buffer->data(), 0x5a, buffer_bytes);
  const ScopedPin pin(spec.app_cpu);
  if (row == HostRow::Restricted) {
    auto q = RestrictedQueue::create(spec, buffer->bytes(), buffer_bytes);
    if (!q) return unexpected(std::move(q).error());
    return drive(**q, spec, buffer->bytes());
  }
  auto q = LiburingQueue::create(row, spec, buffer->bytes(), buffer_bytes);
  if (!q) return unexpected(std::move(q).error());
  return drive(**q, spec, buffer->bytes());
}

}  // namespace rf::bench
