// A hostile guest against the kernel's resources, not only its checks: the attacks of issue #18,
// each measured from the VMM's side (the kernel's own counters, the memory cgroup the test
// process runs in, the clock, and bytes landing in guest RAM), in every mode they apply to:
//   passthrough         the device thread submits (the default, bounded)
//   passthrough-sqpoll  the kernel's SQPOLL thread takes the SQ by itself (opt-in, unbounded; a
//                       watchdog closes the ring)
//   mediated            the mediator validates and submits to a private ring
// The guest is a thread of this process writing the guest's rings directly, as a guest's vCPU
// would: it never uses the reference driver's bookkeeping.
#include <fcntl.h>
#include <linux/capability.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <thread>

#include <gtest/gtest.h>

#include "device_fixture.h"
#include "ring/ring_fdinfo.h"
#include "ring/setup.h"
#include "support/io_uring_threads.h"
#include "support/memory_cgroup.h"
#include "host/thread_capabilities.h"
#include "util/address.h"

namespace rf::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr std::uint32_t kMiB = 1u << 20;
constexpr std::uint64_t kWatched = 4ull << 20;  // GPA of the 4 MiB the hostile reads land in
constexpr std::uint64_t kWatchedBytes = 4ull << 20;
constexpr std::uint16_t kIoprioClassRt = 1;  // IOPRIO_CLASS_RT
constexpr std::uint16_t kIoprioClassBe = 2;  // IOPRIO_CLASS_BE
constexpr std::uint16_t ioprio(std::uint16_t klass, std::uint16_t level) { return static_cast<std::uint16_t>(klass << 13 | level); }

enum class Kind { Passthrough, PassthroughSqpoll, Mediated };

std::string kind_name(const ::testing::TestParamInfo<Kind>& info) {
  switch (info.param) {
    case Kind::Passthrough: return "Passthrough";
    case Kind::PassthroughSqpoll: return "PassthroughSqpoll";
    case Kind::Mediated: return "Mediated";
  }
  return "?";
}

double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// The guest's rings as a hostile vCPU sees them: every word writable, nothing trusted.
class RingAttacker {
 public:
  explicit RingAttacker(TestDevice& d) : d_(d) {
    const abi::RingGeometry& g = d.device_->header().ring;
    sq_head_ = word(g.sq_head);
    sq_tail_ = word(g.sq_tail);
    sq_flags_ = word(g.sq_flags);
    sq_dropped_ = word(g.sq_dropped);
    cq_head_ = word(g.cq_head);
    cq_tail_ = word(g.cq_tail);
    // SAFETY: the descriptor's SQE array lies in guest RAM (region 0 starts at GPA 0, and
    // TestDevice::host maps GPAs there); the device wrote it for this RAM.
    sqes_ = reinterpret_cast<abi::GuestSqe*>(d.host(g.sqes));
    sq_entries_ = g.sq_entries;
    cq_entries_ = g.cq_entries;
  }

  std::uint32_t sq_entries() const { return sq_entries_; }
  std::uint32_t cq_entries() const { return cq_entries_; }
  std::uint32_t load(std::uint32_t* w) const { return __atomic_load_n(w, __ATOMIC_ACQUIRE); }
  void store(std::uint32_t* w, std::uint32_t v) { __atomic_store_n(w, v, __ATOMIC_RELEASE); }
  std::uint32_t* sq_head() { return sq_head_; }
  std::uint32_t* sq_tail() { return sq_tail_; }
  std::uint32_t* sq_dropped() { return sq_dropped_; }
  std::uint32_t* sq_flags() { return sq_flags_; }
  std::uint32_t* cq_head() { return cq_head_; }
  std::uint32_t* cq_tail() { return cq_tail_; }

  void put(std::uint32_t index, const abi::GuestSqe& sqe) { std::memcpy(&sqes_[index & (sq_entries_ - 1)], &sqe, sizeof sqe); }
  void kick() {
    const std::uint64_t one = 1;
    (void)!::write(d_.device_->kick_fd(), &one, sizeof one);
  }
  // Fills the SQ up to what the device's head allows with `make(i)` and publishes it, ringing
  // the doorbell when the device sleeps. Returns the new tail.
  template <typename Make>
  std::uint32_t fill(std::uint32_t tail, Make&& make) {
    const std::uint32_t head = load(sq_head_);
    const std::uint32_t room = sq_entries_ - std::min(sq_entries_, tail - head);
    for (std::uint32_t i = 0; i < room; ++i) put(tail + i, make(tail + i));
    tail += room;
    store(sq_tail_, tail);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if ((load(sq_flags_) & abi::kSqFlagNeedWakeup) != 0) kick();
    return tail;
  }
  void reap_all() { store(cq_head_, load(cq_tail_)); }

  // SQEs of the kinds the attacks use. `addr_gpa` is translated as a well-behaved guest would.
  abi::GuestSqe read(std::uint64_t addr_gpa, std::uint32_t len, std::uint64_t off, std::uint64_t tag) const {
    abi::GuestSqe s{};
    s.opcode = abi::kOpReadFixed;
    s.flags = abi::kSqeFixedFile;
    s.addr = d_.sqe_addr(addr_gpa);
    s.len = len;
    s.off = off;
    s.user_data = tag;
    return s;
  }
  static abi::GuestSqe fsync(std::uint64_t tag) {
    abi::GuestSqe s{};
    s.opcode = abi::kOpFsync;
    s.flags = abi::kSqeFixedFile;
    s.user_data = tag;
    return s;
  }
  static abi::GuestSqe denied(std::uint64_t tag) {
    abi::GuestSqe s{};
    s.opcode = 22;  // IORING_OP_READ: no policy allows it; -EACCES (or the mediator's opcode rule)
    s.flags = abi::kSqeFixedFile;
    s.user_data = tag;
    return s;
  }

 private:
  std::uint32_t* word(std::uint64_t gpa) {
    // SAFETY: the descriptor's ring words lie in guest RAM, 4-aligned (the driver checked as much
    // when it attached).
    return reinterpret_cast<std::uint32_t*>(d_.host(gpa));
  }
  TestDevice& d_;
  std::uint32_t *sq_head_, *sq_tail_, *sq_flags_, *sq_dropped_, *cq_head_, *cq_tail_;
  abi::GuestSqe* sqes_;
  std::uint32_t sq_entries_, cq_entries_;
};

// A thread that plays the hostile guest until stopped.
class Attack {
 public:
  template <typename Body>
  explicit Attack(Body body) : thread_([this, body] {
      while (!stop_.load(std::memory_order_relaxed)) body();
    }) {}
  ~Attack() { stop(); }
  void stop() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// What the kernel holds for a passthrough ring (requests in flight plus overflowed CQEs), from
// its own counters: taken - posted since `base`. nullopt while the counters cannot be read (or
// the ring is closed).
std::optional<std::uint64_t> kernel_outstanding(const PassthroughDevice& device, const KernelRingCounters& base) {
  auto now = device.kernel_counters(8u << 20);
  if (!now) return std::nullopt;
  const std::uint32_t taken = now->sq_head - base.sq_head;
  const std::uint32_t posted = now->cq_tail - base.cq_tail;
  return taken >= posted ? taken - posted : 0;
}

std::uint64_t process_cpu_us() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<std::uint64_t>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1'000'000 +
         static_cast<std::uint64_t>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

std::chrono::nanoseconds thread_cpu_time() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

class HostileResourcesTest : public DeviceFixture, public ::testing::WithParamInterface<Kind> {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(require(mode()));
    if (GetParam() == Kind::PassthroughSqpoll) RF_REQUIRE(sqpoll_feature());
  }
  abi::Mode mode() const { return GetParam() == Kind::Mediated ? abi::Mode::Mediated : abi::Mode::Passthrough; }
  bool sqpoll() const { return GetParam() == Kind::PassthroughSqpoll; }

  void start_device(unsigned queue_depth = 64, const SqpollWatchdogConfig& watchdog = {}) {
    DeviceSetup s;
    s.passthrough.watchdog = watchdog;
    s.mode = mode();
    s.passthrough.queue_depth = queue_depth;
    s.passthrough.submitter = sqpoll() ? PassthroughSubmitter::KernelSqpoll : PassthroughSubmitter::DeviceThread;
    s.mediated.queue_depth = queue_depth;
    s.mediated.mediator.on_kernel_submit = [this](const Sqe& sqe) {
      last_kernel_ioprio_.store(sqe.ioprio);
      if (auto caps = thread_capabilities()) mediator_effective_caps_.store(caps->effective);
    };
    ASSERT_NO_FATAL_FAILURE(start(s));
    attacker_.emplace(*this);
    if (passthrough_ != nullptr) {
      auto base = passthrough_->kernel_counters(kDefaultFdinfoBytes, 1000ms);
      ASSERT_TRUE(base) << base.error();
      base_ = *base;
    }
  }

  // Samples what the kernel holds for the device for `period`, while an attack runs: the
  // largest outstanding count the kernel's counters showed (passthrough; mediated: the
  // mediator's in-flight count, which is the private ring's), and how many samples could read it.
  struct Sampled {
    std::uint64_t most = 0;
    unsigned readings = 0;
    unsigned samples = 0;
    std::optional<Clock::duration> broken_after;  // when the device was first seen broken
    unsigned most_workers = 0;  // io-wq workers of this process at once (iou-wrk-*)
    std::uint64_t most_kernel_bytes = 0;  // kernel memory charged to the cgroup, above the start
  };
  Sampled sample_for(std::chrono::milliseconds period) {
    Sampled s;
    const auto start_time = Clock::now();
    for (const auto end = start_time + period; Clock::now() < end; std::this_thread::sleep_for(2ms)) {
      ++s.samples;
      if (!s.broken_after && device_->broken().reason != BrokenReason::None) s.broken_after = Clock::now() - start_time;
      s.most_workers = std::max(s.most_workers, io_uring_threads("iou-wrk-"));
      if (cgroup_) s.most_kernel_bytes = std::max(s.most_kernel_bytes, kernel_grown());
      std::optional<std::uint64_t> held;
      if (passthrough_ != nullptr) {
        held = kernel_outstanding(*passthrough_, base_);
      } else {
        held = mediated_->counters().in_flight;
      }
      if (!held) continue;
      ++s.readings;
      s.most = std::max(s.most, *held);
    }
    return s;
  }

  // Moves this process into a memory cgroup of its own (512 MiB limit) for the rest of the test.
  void enter_cgroup() {
    auto cgroup = MemoryCgroup::enter(512ull << 20);
    ASSERT_TRUE(cgroup) << cgroup.error();
    cgroup_.emplace(std::move(*cgroup));
    kernel_before_ = cgroup_->kernel_usage();
  }
  // Kernel memory charged to the cgroup above what it held when the test entered it: only the
  // kernel's, because a sanitizer build's own allocations are the process's user memory.
  std::uint64_t kernel_grown() const {
    const std::uint64_t now = cgroup_->kernel_usage();
    return now > kernel_before_ ? now - kernel_before_ : 0;
  }
  // The most of it over the test: what the kernel kept where it keeps a peak, and what sampling saw.
  std::uint64_t kernel_peak(const Sampled& s) const {
    const std::uint64_t kept = cgroup_->kernel_peak().value_or(0);
    return std::max(s.most_kernel_bytes, kept > kernel_before_ ? kept - kernel_before_ : 0);
  }

  // Fills guest RAM's watched range with a byte the disk does not hold.
  void paint_watched() { std::memset(host(kWatched), 0xee, kWatchedBytes); }
  std::vector<std::byte> snapshot_watched() { return {host(kWatched), host(kWatched) + kWatchedBytes}; }

  std::optional<RingAttacker> attacker_;
  std::optional<MemoryCgroup> cgroup_;  // destroyed before the device: left after the test body
  std::uint64_t kernel_before_ = 0;
  KernelRingCounters base_{};
  std::atomic<std::uint16_t> last_kernel_ioprio_{0xffff};
  std::atomic<std::uint64_t> mediator_effective_caps_{~0ull};
};

// 1. Never reap while publishing SQEs the kernel refuses (each still posts a CQE).
TEST_P(HostileResourcesTest, AGuestThatNeverReapsCannotGrowKernelMemory) {
  RF_REQUIRE(memory_cgroup_feature());
  ASSERT_NO_FATAL_FAILURE(start_device());
  ASSERT_NO_FATAL_FAILURE(enter_cgroup());
  const std::uint64_t host_before = host_memory_available();
  std::uint32_t tail = attacker_->load(attacker_->sq_tail());
  Sampled s;
  {
    Attack flood([&] { tail = attacker_->fill(tail, [](std::uint32_t i) { return RingAttacker::denied(i); }); });
    s = sample_for(sqpoll() ? 1000ms : 3000ms);
  }
  const std::uint64_t kernel = kernel_peak(s);
  const BrokenState broken = device_->broken();
  const long long host_drop = (static_cast<long long>(host_before) - static_cast<long long>(host_memory_available())) / 1024;
  std::printf("%s: kernel held at most %llu (bound %llu) in %u of %u samples; kernel memory charged to the cgroup +%llu KiB "
              "at most (all of it +%llu KiB); host MemAvailable %+lld KiB; broken: %s (%s) %.1f ms into the flood\n",
              kind_name({GetParam(), 0}).c_str(), static_cast<unsigned long long>(s.most),
              static_cast<unsigned long long>(device_->in_flight_bound()), s.readings, s.samples,
              static_cast<unsigned long long>(kernel >> 10),
              static_cast<unsigned long long>(cgroup_->peak().value_or(cgroup_->usage()) >> 10), -host_drop,
              std::string(broken_reason_name(broken.reason)).c_str(), broken.detail.c_str(),
              s.broken_after ? ms(*s.broken_after) : -1.0);
  EXPECT_EQ(cgroup_->oom_kills(), 0u);
  EXPECT_LT(host_drop, 256ll << 10) << "the host lost memory";
  if (sqpoll()) {
    // Unbounded by construction: contained by the watchdog, which closed the ring.
    EXPECT_EQ(broken.reason, BrokenReason::InFlightBound) << broken.detail;
    ASSERT_TRUE(s.broken_after);
    EXPECT_LT(*s.broken_after, 500ms) << "the watchdog took too long";
    EXPECT_LT(kernel, 64ull << 20) << "the watchdog let the kernel grow the VMM's memory";
  } else {
    EXPECT_GT(s.readings, 10u) << "the kernel's counters were never readable";
    EXPECT_LE(s.most, device_->in_flight_bound());
    EXPECT_EQ(broken.reason, BrokenReason::None) << broken.detail;
    EXPECT_LT(kernel, 16ull << 20) << "the kernel grew the VMM's memory";
  }
}

// 1b. The same with the SQ tail jumped far ahead, again and again.
TEST_P(HostileResourcesTest, AJumpingTailBreaksTheDeviceOrIsContained) {
  RF_REQUIRE(memory_cgroup_feature());
  ASSERT_NO_FATAL_FAILURE(start_device());
  ASSERT_NO_FATAL_FAILURE(enter_cgroup());
  for (std::uint32_t i = 0; i < attacker_->sq_entries(); ++i) attacker_->put(i, RingAttacker::denied(i));
  const auto flood_start = Clock::now();
  Sampled s;
  {
    Attack jump([&] {
      attacker_->store(attacker_->sq_tail(), attacker_->load(attacker_->sq_head()) + 0x7fff0000u);
      attacker_->kick();
      std::this_thread::sleep_for(100us);
    });
    s = sample_for(1000ms);
  }
  const std::uint64_t peak = kernel_peak(s);
  const BrokenState broken = device_->broken();
  std::printf("%s: kernel held at most %llu; kernel memory +%llu KiB at most; broken: %s (%s) %.1f ms into the flood\n",
              kind_name({GetParam(), 0}).c_str(), static_cast<unsigned long long>(s.most),
              static_cast<unsigned long long>(peak >> 10), std::string(broken_reason_name(broken.reason)).c_str(),
              broken.detail.c_str(), s.broken_after ? ms(*s.broken_after) : -1.0);
  (void)flood_start;
  EXPECT_EQ(broken.reason, sqpoll() ? BrokenReason::InFlightBound : BrokenReason::SqTailJump) << broken.detail;
  ASSERT_TRUE(s.broken_after);
  EXPECT_LT(*s.broken_after, 500ms);
  // The SQPOLL thread eats the jumped tail's stale SQEs until the watchdog sees it: bounded in
  // time, not in count.
  if (!sqpoll()) {
    EXPECT_LE(s.most, device_->in_flight_bound());
  }
  EXPECT_LT(peak, sqpoll() ? 64ull << 20 : 16ull << 20);
  // A broken device stops at once, and the kernel lets go of guest RAM.
  const auto stop_start = Clock::now();
  const DeviceStopReport r = device_->stop(0ms);
  EXPECT_TRUE(r.released);
  EXPECT_LT(Clock::now() - stop_start, 2s);
}

// 2. Keep requests in flight without waiting for them: reads of 1 MiB and FSYNCs, reaping every
// completion so the CQ never overflows.
TEST_P(HostileResourcesTest, AnInFlightFloodStaysWithinTheBound) {
  RF_REQUIRE(memory_cgroup_feature());
  ASSERT_NO_FATAL_FAILURE(start_device());
  ASSERT_NO_FATAL_FAILURE(enter_cgroup());
  std::uint32_t tail = attacker_->load(attacker_->sq_tail());
  Sampled s;
  {
    Attack flood([&] {
      tail = attacker_->fill(tail, [&](std::uint32_t i) {
        return i % 2 == 0 ? RingAttacker::fsync(i) : attacker_->read(kWatched, kMiB, (i % 4) * kMiB, i);
      });
      attacker_->reap_all();
    });
    s = sample_for(2000ms);
  }
  const std::uint64_t peak = kernel_peak(s);
  const BrokenState broken = device_->broken();
  // The kernel bounds io-wq workers for these opcodes on files and block devices: min(SQ entries,
  // 4 x CPUs) per submitting thread (one here: the device thread, the SQPOLL thread or the mediator).
  const unsigned cpus = std::thread::hardware_concurrency();
  const unsigned worker_bound = std::min(attacker_->sq_entries(), 4 * cpus);
  std::printf("%s: kernel held at most %llu (bound %llu) in %u of %u samples; kernel memory +%llu KiB at most; io-wq workers at "
              "most %u (bound %u); broken: %s\n",
              kind_name({GetParam(), 0}).c_str(), static_cast<unsigned long long>(s.most),
              static_cast<unsigned long long>(device_->in_flight_bound()), s.readings, s.samples,
              static_cast<unsigned long long>(peak >> 10), s.most_workers, worker_bound,
              std::string(broken_reason_name(broken.reason)).c_str());
  EXPECT_LE(s.most_workers, worker_bound);
  if (!sqpoll()) {
    EXPECT_EQ(broken.reason, BrokenReason::None) << broken.detail;
    EXPECT_GT(s.readings, 10u);
    EXPECT_LE(s.most, device_->in_flight_bound());
    EXPECT_LT(peak, 16ull << 20);
  } else {
    // The SQPOLL thread takes whatever is published; the watchdog closes the ring if the kernel
    // came to hold more than the bound.
    if (broken.reason != BrokenReason::None) {
      EXPECT_EQ(broken.reason, BrokenReason::InFlightBound) << broken.detail;
    }
    EXPECT_LT(peak, 64ull << 20);
  }
}

// 3. After a flood the VMM's own calls take bounded time: counters, quiesce, stop.
TEST_P(HostileResourcesTest, AfterAFloodCountersQuiesceAndStopTakeBoundedTime) {
  ASSERT_NO_FATAL_FAILURE(start_device());
  std::uint32_t tail = attacker_->load(attacker_->sq_tail());
  {
    Attack flood([&] { tail = attacker_->fill(tail, [](std::uint32_t i) { return RingAttacker::denied(i); }); });
    std::this_thread::sleep_for(1000ms);
  }
  Clock::duration slowest_counters{0};
  for (int i = 0; i < 20; ++i) {
    const auto t = Clock::now();
    (void)device_->in_flight();
    (void)device_->completions_posted();
    slowest_counters = std::max(slowest_counters, Clock::now() - t);
  }
  const auto q = Clock::now();
  const auto quiesced = device_->quiesce(100ms);
  const auto quiesce_time = Clock::now() - q;
  const auto st = Clock::now();
  const DeviceStopReport report = device_->stop(0ms);
  const auto stop_time = Clock::now() - st;
  std::printf("%s: counters at most %.2f ms; quiesce(100 ms) %s in %.1f ms; stop(0) %.1f ms, released %d\n",
              kind_name({GetParam(), 0}).c_str(), ms(slowest_counters), quiesced ? "ok" : quiesced.error().message.c_str(),
              ms(quiesce_time), ms(stop_time), report.released);
  EXPECT_LT(slowest_counters, 50ms);
  EXPECT_LT(quiesce_time, 400ms);
  EXPECT_LT(stop_time, 2s);
  EXPECT_TRUE(report.released);
}

// 3c. A guest that hides its completions: a denied SQE that starts a link chain with
// IOSQE_CQE_SKIP_SUCCESS completes alone (-EACCES) and the kernel cancels the SQEs linked after
// it without a CQE. The kernel's counters then say those are still outstanding, for good: the
// bound counts them against the guest (which only slows itself: a chain cannot run past one
// io_uring_enter, so near the bound the device takes one SQE at a time), and quiesce, which
// cannot tell that they are done, says so instead of claiming they are.
TEST_P(HostileResourcesTest, AGuestThatHidesItsCompletionsOnlyStallsItself) {
  ASSERT_NO_FATAL_FAILURE(start_device());
  constexpr std::uint8_t kLink = 1u << 2, kCqeSkip = 1u << 6;  // IOSQE_IO_LINK, IOSQE_CQE_SKIP_SUCCESS
  std::uint32_t tail = attacker_->load(attacker_->sq_tail());
  const auto chain = [&](std::uint32_t i) {
    abi::GuestSqe s = RingAttacker::denied(i);
    s.opcode = abi::kOpNop;
    // Eight SQEs a chain: the head (denied: these flags are not allowed) and seven linked after it.
    s.flags = static_cast<std::uint8_t>(abi::kSqeFixedFile | (i % 8 == 7 ? 0 : kLink) | kCqeSkip);
    return s;
  };
  Sampled s;
  {
    Attack hide([&] {
      tail = attacker_->fill(tail, chain);
      attacker_->reap_all();
    });
    s = sample_for(1000ms);
  }
  std::this_thread::sleep_for(100ms);
  const BrokenState broken = device_->broken();
  const auto in_flight = device_->in_flight();
  const auto quiesced = device_->quiesce(200ms);
  std::printf("%s: hiding completions: the kernel's counters showed at most %llu outstanding (bound %llu); now %s in "
              "flight; quiesce: %s; broken: %s\n",
              kind_name({GetParam(), 0}).c_str(), static_cast<unsigned long long>(s.most),
              static_cast<unsigned long long>(device_->in_flight_bound()),
              in_flight ? std::to_string(*in_flight).c_str() : "unknown",
              quiesced ? "ok" : quiesced.error().message.c_str(), std::string(broken_reason_name(broken.reason)).c_str());
  if (GetParam() == Kind::Passthrough) {
    EXPECT_EQ(broken.reason, BrokenReason::None) << broken.detail;
    ASSERT_TRUE(in_flight);
    EXPECT_GT(*in_flight, 0u) << "no completion was hidden: the attack did not work";
    EXPECT_LE(s.most, device_->in_flight_bound());
    EXPECT_FALSE(quiesced) << "quiesce cannot tell that the hidden requests are done: it must not claim they are";
  } else if (GetParam() == Kind::PassthroughSqpoll) {
    EXPECT_EQ(broken.reason, BrokenReason::InFlightBound) << "the watchdog counts hidden completions as outstanding";
  } else {
    // The mediator refuses the flags: one CQE for every SQE, nothing hidden.
    EXPECT_EQ(broken.reason, BrokenReason::None);
    EXPECT_TRUE(quiesced);
  }
  const DeviceStopReport r = device_->stop(0ms);
  EXPECT_TRUE(r.released);
}

// 4. The guest writes sq_dropped = 0x7fffffff (a word the kernel keeps in guest RAM) with reads
// in flight: quiesce must not believe it. When it returns, the kernel holds no request and
// nothing lands in guest RAM afterwards.
TEST_P(HostileResourcesTest, QuiesceDoesNotBelieveTheDroppedCounter) {
  ASSERT_NO_FATAL_FAILURE(start_device());
  paint_watched();
  std::uint32_t tail = attacker_->load(attacker_->sq_tail());
  tail = attacker_->fill(tail, [&](std::uint32_t i) { return attacker_->read(kWatched + (i % 4) * kMiB, kMiB, (i % 4) * kMiB, i); });
  Attack lie([&] { attacker_->store(attacker_->sq_dropped(), 0x7fffffffu); });
  std::optional<Attack> more;
  if (sqpoll()) {
    lie.stop();  // SQPOLL passthrough needs the guest paused to quiesce (its kernel thread reads the SQ)
  } else {
    // The guest keeps publishing meanwhile: those wait in the SQ until resume.
    more.emplace([&] {
      tail = attacker_->fill(tail, [&](std::uint32_t i) { return attacker_->read(kWatched + (i % 4) * kMiB, kMiB, (i % 4) * kMiB, i); });
      std::this_thread::sleep_for(100us);
    });
  }
  ASSERT_TRUE(device_->quiesce(10s));
  const auto held = passthrough_ != nullptr ? kernel_outstanding(*passthrough_, base_) : mediated_->counters().in_flight;
  const auto at_quiesce = snapshot_watched();
  std::this_thread::sleep_for(300ms);
  const bool unchanged = snapshot_watched() == at_quiesce;
  if (more) more->stop();
  lie.stop();
  ASSERT_TRUE(held.has_value());
  // Requests quiesce waited for may sit in the CQ (or, passthrough, its overflow list) unreaped:
  // what the kernel still holds is at most those, never one in flight.
  if (passthrough_ != nullptr) {
    auto now = passthrough_->kernel_counters();
    ASSERT_TRUE(now) << now.error();
    EXPECT_EQ(static_cast<std::uint32_t>(now->sq_head - base_.sq_head),
              static_cast<std::uint32_t>(now->cq_tail - base_.cq_tail) + now->overflow)
        << "the kernel took more SQEs than it posted CQEs: requests were in flight after quiesce";
  } else {
    EXPECT_EQ(*held, 0u);
  }
  EXPECT_TRUE(unchanged) << "guest RAM was written after quiesce returned";
  ASSERT_TRUE(device_->resume());
}

// 5. Fill the SQ with valid reads, jump the tail, go quiet, stop: stop returns only when nothing
// can touch guest RAM any more, and says so.
TEST_P(HostileResourcesTest, StopReturnsOnlyWhenNothingCanTouchGuestRam) {
  ASSERT_NO_FATAL_FAILURE(start_device());
  paint_watched();
  std::uint32_t tail = attacker_->load(attacker_->sq_tail());
  tail = attacker_->fill(tail, [&](std::uint32_t i) { return attacker_->read(kWatched + (i % 4) * kMiB, kMiB, (i % 4) * kMiB, i); });
  attacker_->store(attacker_->sq_tail(), tail + 0x10000u);
  attacker_->kick();
  std::this_thread::sleep_for(20ms);  // the kernel (or the device thread) is busy with them now
  const auto st = Clock::now();
  const DeviceStopReport report = device_->stop(0ms);
  const auto stop_time = Clock::now() - st;
  const auto at_stop = snapshot_watched();
  std::this_thread::sleep_for(500ms);
  const bool unchanged = snapshot_watched() == at_stop;
  std::printf("%s: stop(0) %.1f ms, released %d, cancelled %llu; io_uring threads after 500 ms: %u\n",
              kind_name({GetParam(), 0}).c_str(), ms(stop_time), report.released,
              static_cast<unsigned long long>(report.cancelled), io_uring_threads());
  EXPECT_TRUE(report.released);
  EXPECT_TRUE(unchanged) << "guest RAM was written after stop returned";
  EXPECT_LT(stop_time, std::chrono::duration_cast<Clock::duration>(kReleaseTimeout));
}

// 6. Real-time I/O priority: the VMM runs as root, but the threads that issue guest requests
// do not have its capabilities, so the kernel refuses the RT class. (Mediated: the kernel SQE is
// rebuilt with ioprio 0, on a thread without capabilities.)
TEST_P(HostileResourcesTest, RealTimeIoPriorityIsRefused) {
  ASSERT_NO_FATAL_FAILURE(start_device());
  abi::GuestSqe rt = attacker_->read(kWatched, 4096, 0, 1);
  rt.ioprio = ioprio(kIoprioClassRt, 0);
  abi::GuestSqe be = attacker_->read(kWatched, 4096, 0, 2);
  be.ioprio = ioprio(kIoprioClassBe, 7);
  const int rt_result = one_raw(rt).result;
  const int be_result = one_raw(be).result;
  if (mode() == abi::Mode::Passthrough) {
    EXPECT_EQ(rt_result, -EPERM) << "the kernel accepted real-time I/O priority from the guest";
    EXPECT_EQ(be_result, 4096) << "best-effort priority is every process's to choose";
  } else {
    EXPECT_EQ(rt_result, 4096);
    EXPECT_EQ(last_kernel_ioprio_.load(), 0u) << "the mediator passed the guest's ioprio on";
    EXPECT_EQ(mediator_effective_caps_.load(), 0u) << "the mediator thread kept capabilities";
  }
}

// The control for the test above: as root, a ring created and driven with the process's full
// capabilities does accept the real-time class, so a refusal above is the credentials' doing.
TEST(HostileResourcesControl, ARingWithTheVmmsCapabilitiesAcceptsRealTimePriority) {
  const auto caps = thread_capabilities();
  ASSERT_TRUE(caps) << caps.error().message;
  if ((caps->effective & (capability_bit(CAP_SYS_ADMIN) | capability_bit(CAP_SYS_NICE))) == 0) {
    GTEST_SKIP() << "this process has neither CAP_SYS_ADMIN nor CAP_SYS_NICE: nothing to drop";
  }
  RF_REQUIRE(restrictions_feature());
  TempDir dir("ringfence-test");
  const std::string image = make_image(dir, "d.img", 1 << 20);
  UniqueFd fd(::open(image.c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(fd);
  auto buffer = MmapRegion::map_anonymous(4096);
  ASSERT_TRUE(buffer);
  auto disabled = DisabledRing::create({});
  ASSERT_TRUE(disabled) << disabled.error().message;
  const int fds[] = {fd.get()};
  ASSERT_TRUE(disabled->register_files(fds));
  const BufferRegion region{buffer->bytes(), 4096};
  ASSERT_TRUE(disabled->register_buffers({&region, 1}));
  auto restricted = std::move(*disabled).restrict(RestrictionSet{}.allow(SqeOpcode::ReadFixed).allow_flags(abi::kSqeFixedFile));
  ASSERT_TRUE(restricted);
  auto ring = std::move(*restricted).enable();
  ASSERT_TRUE(ring) << ring.error().message;
  Sqe sqe = Sqe::read_fixed(FileRef::fixed({0}), buffer->bytes(), 4096, 0, BufferIndex{0});
  sqe.ioprio = ioprio(kIoprioClassRt, 0);
  auto cqe = ring->submit_and_wait(sqe, 5s);
  ASSERT_TRUE(cqe) << cqe.error().message;
  EXPECT_EQ(cqe->res, 4096);
}

// 7. Doorbells with nothing behind them: what one costs the host.
TEST_P(HostileResourcesTest, DoorbellsWithoutSqesCostLittleHostCpu) {
  ASSERT_NO_FATAL_FAILURE(start_device());
  std::this_thread::sleep_for(20ms);
  const std::uint64_t cpu_before = process_cpu_us();
  const auto start_time = Clock::now();
  constexpr int kKicks = 100;
  for (int i = 0; i < kKicks; ++i) {
    attacker_->kick();
    std::this_thread::sleep_for(10ms);
  }
  const double cpu_ms = static_cast<double>(process_cpu_us() - cpu_before) / 1000.0;
  const double wall_ms = ms(Clock::now() - start_time);
  std::printf("%s: %d doorbells 10 ms apart: %.1f ms of CPU in %.0f ms (%.0f%% of a CPU)\n", kind_name({GetParam(), 0}).c_str(),
              kKicks, cpu_ms, wall_ms, 100.0 * cpu_ms / wall_ms);
  if (!sqpoll()) {
    // Each costs a wake-up and the device's short poll (50 µs by default).
    EXPECT_LT(cpu_ms, 0.10 * wall_ms);
  }
}

// Waits until the device has gone to sleep (NEED_WAKEUP set); false after a second.
bool wait_for_sleep(RingAttacker& guest) {
  const auto end = Clock::now() + 1s;
  while ((guest.load(guest.sq_flags()) & abi::kSqFlagNeedWakeup) == 0) {
    if (Clock::now() > end) return false;
  }
  return true;
}

// Waits up to `limit` for the CQ tail to pass `tail`.
bool completes(RingAttacker& guest, std::uint32_t tail, Clock::duration limit) {
  const auto end = Clock::now() + limit;
  while (guest.load(guest.cq_tail()) == tail) {
    if (Clock::now() > end) return false;
    std::this_thread::sleep_for(100us);
  }
  return true;
}

// The late look (vmm-glue/device/late_look.h): a guest whose full barrier is no barrier (QEMU's
// single-threaded TCG) publishes its tail just as the device falls asleep, reads the flag before
// the device's store of it is visible, and does not ring. Played here by publishing right after
// the flag appears, without a doorbell: the device's own last look has usually passed by then, so
// only the late look finds the SQE. An attempt counts when the SQE was published within 200 µs of
// the flag (well inside the millisecond); a descheduled test thread makes it inconclusive.
// The devices whose own thread sleeps (the kernel's SQPOLL thread sleeps by the kernel's rules).
class LateLookTest : public HostileResourcesTest {};

TEST_P(LateLookTest, AnSqePublishedAsTheDeviceFallsAsleepIsTakenWithoutADoorbell) {
  ASSERT_NO_FATAL_FAILURE(start_device());
  RingAttacker& guest = *attacker_;
  std::uint32_t tail = guest.load(guest.sq_tail());
  int conclusive = 0;
  for (int attempt = 0; attempt < 40 && conclusive < 5; ++attempt) {
    ASSERT_TRUE(wait_for_sleep(guest)) << "the idle device never set NEED_WAKEUP";
    const auto seen = Clock::now();
    const std::uint32_t cq_tail = guest.load(guest.cq_tail());
    guest.put(tail, guest.read(kWatched, 4096, 0, 1000 + attempt));
    guest.store(guest.sq_tail(), ++tail);
    const auto published = Clock::now() - seen;
    const bool taken = completes(guest, cq_tail, 2s);
    guest.reap_all();
    if (published > 200us) continue;
    ++conclusive;
    EXPECT_TRUE(taken) << "attempt " << attempt << ": an SQE published " << ms(published)
                       << " ms after NEED_WAKEUP, with no doorbell, was never taken";
  }
  EXPECT_GE(conclusive, 5) << "the test thread was too slow to publish within 200 µs of the flag";
}

// ... and it is one look, not a poll: an SQE published long after the device fell asleep waits
// for the doorbell, as the ABI says, and costs the device nothing until then.
TEST_P(LateLookTest, AnSqePublishedLongAfterTheDeviceSleptWaitsForTheDoorbell) {
  ASSERT_NO_FATAL_FAILURE(start_device());
  RingAttacker& guest = *attacker_;
  std::uint32_t tail = guest.load(guest.sq_tail());
  ASSERT_TRUE(wait_for_sleep(guest));
  std::this_thread::sleep_for(50ms);  // well past the late look
  const std::uint32_t cq_tail = guest.load(guest.cq_tail());
  guest.put(tail, guest.read(kWatched, 4096, 0, 7));
  guest.store(guest.sq_tail(), ++tail);
  EXPECT_FALSE(completes(guest, cq_tail, 300ms)) << "the sleeping device took an SQE nobody rang for";
  guest.kick();
  EXPECT_TRUE(completes(guest, cq_tail, 2s)) << "the doorbell did not wake the device";
}

// The measurement above can fail: with the watchdog as good as off (it reads the kernel's
// counters once an hour), the same flood grows the kernel memory charged to the VMM's cgroup by
// tens of MiB a second, without end (16 MiB, where the tests above see a few hundred KiB).
TEST(HostileResourcesMeasurement, WithoutTheWatchdogAnSqpollFloodGrowsKernelMemory) {
  RF_REQUIRE(memory_cgroup_feature());
  RF_REQUIRE(sqpoll_feature());
  RF_REQUIRE(no_mmap_feature());
  RF_REQUIRE(no_sqarray_feature());
  RF_REQUIRE(restrictions_feature());
  RF_REQUIRE(loop_device_feature());
  TestDevice d;
  DeviceSetup setup;
  setup.passthrough.submitter = PassthroughSubmitter::KernelSqpoll;
  setup.passthrough.watchdog = SqpollWatchdogConfig{std::chrono::hours(1), std::chrono::hours(1)};
  ASSERT_NO_FATAL_FAILURE(d.start(setup));
  RingAttacker attacker(d);
  auto cgroup = MemoryCgroup::enter(512ull << 20);
  ASSERT_TRUE(cgroup) << cgroup.error();
  const std::uint64_t charged_before = cgroup->kernel_usage();
  std::uint32_t tail = attacker.load(attacker.sq_tail());
  // Until the kernel memory charged to the group has grown by 16 MiB, or 5 s: at this machine's
  // flood rate (about 70 MiB/s when quiet) a fraction of a second.
  std::uint64_t grown = 0;
  const auto flood_start = Clock::now();
  {
    Attack flood([&] { tail = attacker.fill(tail, [](std::uint32_t i) { return RingAttacker::denied(i); }); });
    while (grown < (16ull << 20) && Clock::now() - flood_start < 5s) {
      std::this_thread::sleep_for(10ms);
      grown = cgroup->kernel_usage() - std::min(cgroup->kernel_usage(), charged_before);
    }
  }
  const auto flooded_for = Clock::now() - flood_start;
  const auto st = Clock::now();
  const DeviceStopReport r = d.device_->stop(0ms);
  std::printf("without the watchdog: kernel memory +%llu KiB after %.0f ms of flooding; stop %.0f ms, released %d\n",
              static_cast<unsigned long long>(grown >> 10), ms(flooded_for), ms(Clock::now() - st), r.released);
  EXPECT_EQ(d.device_->broken().reason, BrokenReason::None);
  EXPECT_GE(grown, 16ull << 20) << "a flood the watchdog does not stop grew nothing: the measurement is blind";
  EXPECT_TRUE(r.released);
}

// 3b. Two SQPOLL devices share one kernel thread; one guest floods while the VMM reads that
// device's counters as fast as it can. The other guest's worst read latency stays bounded:
// observers answer from the watchdog's last reading instead of making the kernel print (under
// the ring's lock, which the shared thread then waits for) what the flood queued.
TEST(HostileResourcesShared, ObservingAFloodedDeviceDoesNotStallItsSqpollNeighbour) {
  RF_REQUIRE(sqpoll_feature());
  RF_REQUIRE(no_mmap_feature());
  RF_REQUIRE(no_sqarray_feature());
  RF_REQUIRE(restrictions_feature());
  RF_REQUIRE(loop_device_feature());
  TestDevice flooded, neighbour;
  DeviceSetup setup;
  setup.passthrough.submitter = PassthroughSubmitter::KernelSqpoll;
  ASSERT_NO_FATAL_FAILURE(flooded.start(setup));
  setup.passthrough.share_sqpoll_with = flooded.passthrough_;
  ASSERT_NO_FATAL_FAILURE(neighbour.start(setup));
  RingAttacker attacker(flooded);
  // The neighbour reads 4 KiB at a time; its worst latency over `period`.
  const auto worst_read = [&](std::chrono::milliseconds period) {
    Clock::duration worst{0};
    unsigned n = 0;
    for (const auto end = Clock::now() + period; Clock::now() < end; ++n) {
      const auto t = Clock::now();
      EXPECT_EQ(neighbour.one({guest::Op::Read, 0, (n % 64) * 4096ull, kScratch, 4096, n}).result, 4096);
      worst = std::max(worst, Clock::now() - t);
    }
    return worst;
  };
  const auto quiet = worst_read(500ms);
  std::uint32_t tail = attacker.load(attacker.sq_tail());
  std::atomic<bool> observing{true};
  // CPU time, not wall time: on two CPUs the observer also waits for the flood's threads to
  // let it run, which says nothing about what an observation costs.
  std::chrono::nanoseconds slowest_observation{0};
  std::thread observer([&] {
    while (observing.load()) {
      const auto t = thread_cpu_time();
      (void)flooded.device_->in_flight();
      (void)flooded.device_->completions_posted();
      slowest_observation = std::max(slowest_observation, thread_cpu_time() - t);
    }
  });
  Clock::duration busy{0};
  {
    Attack flood([&] { tail = attacker.fill(tail, [](std::uint32_t i) { return RingAttacker::denied(i); }); });
    busy = worst_read(1000ms);
  }
  observing.store(false);
  observer.join();
  const BrokenState broken = flooded.device_->broken();
  std::printf("neighbour's worst 4 KiB read: %.2f ms quiet, %.2f ms while the other guest flooded and its counters were "
              "read (slowest reading %.3f ms of CPU); flooded device: %s\n",
              ms(quiet), ms(busy), ms(slowest_observation), std::string(broken_reason_name(broken.reason)).c_str());
  EXPECT_EQ(broken.reason, BrokenReason::InFlightBound) << broken.detail;
  EXPECT_LT(slowest_observation, 5ms) << "an observer read what the flood queued";
  EXPECT_LT(busy, 50ms) << "the flood (or its observation) stalled the neighbour's SQPOLL thread";
  EXPECT_EQ(neighbour.device_->broken().reason, BrokenReason::None);
}

INSTANTIATE_TEST_SUITE_P(Kinds, HostileResourcesTest,
                         ::testing::Values(Kind::Passthrough, Kind::PassthroughSqpoll, Kind::Mediated), kind_name);
INSTANTIATE_TEST_SUITE_P(Kinds, LateLookTest, ::testing::Values(Kind::Passthrough, Kind::Mediated), kind_name);

}  // namespace
}  // namespace rf::test
