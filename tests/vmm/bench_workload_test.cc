// The guest benchmark workload (the guest side of `ringfence bench`'s passthrough and mediated
// rows) on a live device in this process: it follows the phase word, counts only the measured
// window, times every counted I/O, and refuses what it cannot run.
#include "guest/bench_workload.h"

#include <atomic>
#include <thread>

#include <gtest/gtest.h>

#include "device_fixture.h"
#include "util/cycle_counter.h"

namespace rf {
namespace {

using guest::BenchPhase;
using guest::BenchStatus;
using test::kScratch;

constexpr std::uint64_t kControl = 0x2000;  // before the device window at 0x10000

class BenchWorkloadTest : public test::DeviceFixture, public ::testing::WithParamInterface<abi::Mode> {
 protected:
  void SetUp() override { ASSERT_NO_FATAL_FAILURE(require(GetParam())); }
  void start_device(DiskOptions disk = {}) {
    test::DeviceSetup setup;
    setup.mode = GetParam();
    setup.disk = disk;
    ASSERT_NO_FATAL_FAILURE(start(setup));
  }
  guest::BenchConfig config(guest::BenchPattern pattern = guest::BenchPattern::RandRead) const {
    guest::BenchConfig c;
    c.depth = 8;
    c.pattern = pattern;
    c.control_gpa = kControl;
    c.scratch_gpa = kScratch;
    c.scratch_bytes = test::kFixtureRam - kScratch;
    return c;
  }
  void set_phase(BenchPhase phase) {
    // SAFETY: kControl is a page-aligned guest-RAM page the test owns; the guest reads the word atomically
    // too.
    std::atomic_ref<std::uint32_t>(*reinterpret_cast<std::uint32_t*>(host(kControl)))
        .store(static_cast<std::uint32_t>(phase), std::memory_order_release);
  }
  // Runs the workload here while another thread plays the VMM: ramp, measure, stop.
  BenchStatus run_phased(const guest::BenchConfig& c, guest::BenchReport& report, std::chrono::milliseconds ramp,
                         std::chrono::milliseconds measure) {
    set_phase(BenchPhase::Ramp);
    std::thread vmm([&] {
      std::this_thread::sleep_for(ramp);
      if (measure.count() != 0) {
        set_phase(BenchPhase::Measure);
        std::this_thread::sleep_for(measure);
      }
      set_phase(BenchPhase::Stop);
    });
    const BenchStatus status = guest::run_bench_workload(driver_, c, report);
    vmm.join();
    return status;
  }
  std::uint64_t histogram_total() {
    // SAFETY: kScratch is page-aligned guest RAM where the guest wrote the histogram's 64-bit counts.
    const auto* counts = reinterpret_cast<const std::uint64_t*>(host(kScratch));
    std::uint64_t total = 0;
    for (unsigned b = 0; b < buckets::kCount; ++b) total += counts[b];
    return total;
  }
};

TEST_P(BenchWorkloadTest, CountsAndTimesOnlyTheMeasuredWindow) {
  ASSERT_NO_FATAL_FAILURE(start_device());
  guest::BenchReport report;
  const auto before = read_cycle_counter();
  ASSERT_EQ(run_phased(config(), report, std::chrono::milliseconds(50), std::chrono::milliseconds(200)),
            BenchStatus::Ok);
  EXPECT_EQ(report.status, BenchStatus::Ok);
  EXPECT_EQ(report.depth, 8u);
  EXPECT_GT(report.ios, 0u);
  EXPECT_EQ(report.reads, report.ios);
  EXPECT_EQ(report.writes, 0u);
  EXPECT_EQ(report.errors, 0u);
  EXPECT_EQ(histogram_total(), report.ios);  // every counted I/O has a latency
  EXPECT_GT(report.ticks_start, before);
  EXPECT_GT(report.ticks_end, report.ticks_start);
  EXPECT_EQ(driver_.in_flight(), 0u);  // it drained before returning
  // I/Os during the ramp were done but not counted.
  EXPECT_GT(driver_.counters().completed, report.ios);
}

TEST_P(BenchWorkloadTest, RandRwDoesBothReadsAndWrites) {
  ASSERT_NO_FATAL_FAILURE(start_device());
  guest::BenchReport report;
  ASSERT_EQ(run_phased(config(guest::BenchPattern::RandRW), report, std::chrono::milliseconds(10),
                       std::chrono::milliseconds(200)),
            BenchStatus::Ok);
  EXPECT_GT(report.reads, 0u);
  EXPECT_GT(report.writes, 0u);
  EXPECT_EQ(report.reads + report.writes, report.ios);
  EXPECT_EQ(report.errors, 0u);
}

TEST_P(BenchWorkloadTest, AStopWithoutAMeasurementIsAnEmptyRun) {
  ASSERT_NO_FATAL_FAILURE(start_device());
  guest::BenchReport report;
  ASSERT_EQ(run_phased(config(), report, std::chrono::milliseconds(20), std::chrono::milliseconds(0)), BenchStatus::Ok);
  EXPECT_EQ(report.ios, 0u);
  EXPECT_EQ(report.ticks_start, report.ticks_end);
  EXPECT_GT(driver_.counters().completed, 0u);
}

TEST_P(BenchWorkloadTest, RefusesWhatItCannotRun) {
  DiskOptions read_only;
  read_only.read_only = true;
  ASSERT_NO_FATAL_FAILURE(start_device(read_only));
  set_phase(BenchPhase::Stop);  // should any case run, it ends at once
  guest::BenchReport report;
  auto c = config();
  c.depth = 0;
  EXPECT_EQ(guest::run_bench_workload(driver_, c, report), BenchStatus::BadConfig);
  c = config();
  c.block_bytes = 1000;  // not a multiple of the logical block size
  EXPECT_EQ(guest::run_bench_workload(driver_, c, report), BenchStatus::BadConfig);
  c = config();
  c.disk = 1;
  EXPECT_EQ(guest::run_bench_workload(driver_, c, report), BenchStatus::BadConfig);
  EXPECT_EQ(guest::run_bench_workload(driver_, config(guest::BenchPattern::RandWrite), report),
            BenchStatus::BadConfig);  // writes to a read-only disk
  c = config();
  c.scratch_gpa = test::kFixtureRam - 4096;  // the histogram alone does not fit
  EXPECT_EQ(guest::run_bench_workload(driver_, c, report), BenchStatus::NoScratch);
  c = config();
  c.scratch_bytes = guest::bench_scratch_bytes(c) - 1;
  EXPECT_EQ(guest::run_bench_workload(driver_, c, report), BenchStatus::NoScratch);
  c = config();
  c.control_gpa = test::kFixtureRam;  // outside guest memory
  EXPECT_EQ(guest::run_bench_workload(driver_, c, report), BenchStatus::NoScratch);
  EXPECT_EQ(report.status, BenchStatus::NoScratch);
  EXPECT_EQ(driver_.counters().submitted, 0u);  // nothing reached the device
}

INSTANTIATE_TEST_SUITE_P(Modes, BenchWorkloadTest, ::testing::Values(abi::Mode::Passthrough, abi::Mode::Mediated),
                         [](const auto& p) { return p.param == abi::Mode::Passthrough ? "Passthrough" : "Mediated"; });

}  // namespace
}  // namespace rf
