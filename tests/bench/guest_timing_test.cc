// A bench guest's report turned into a result: ticks into time with the VMM's marks, a guest
// counter with another origin, and reports whose window cannot be right.
#include "engine/guest_timing.h"

#include <gtest/gtest.h>

#include <vector>

namespace rf::bench {
namespace {

using namespace std::chrono_literals;

// Marks 1 s apart at 2 ticks per nanosecond, with 300 ms of CPU time between them.
struct Marks {
  PhaseMark measure, stop;
  Marks() {
    measure.clock = std::chrono::steady_clock::time_point(10s);
    measure.cycles = 50'000'000'000ull;
    measure.cpu = CpuTimes{100ms, 50ms};
    stop.clock = measure.clock + 1s;
    stop.cycles = measure.cycles + 2'000'000'000ull;
    stop.cpu = CpuTimes{300ms, 150ms};
  }
};

guest::BenchReport report_from(unsigned long long start, unsigned long long end) {
  guest::BenchReport r;
  r.ios = 1000;
  r.reads = 600;
  r.writes = 400;
  r.ticks_start = start;
  r.ticks_end = end;
  return r;
}

TEST(GuestTiming, TicksBecomeTimeAtTheVmmsRate) {
  const Marks m;
  std::vector<std::uint64_t> histogram(buckets::kCount);
  histogram[buckets::bucket_of(20'000)] = 1000;  // 10 µs at 2 ticks/ns
  auto r = bench_job_result(report_from(m.measure.cycles + 1000, m.measure.cycles + 1'000'001'000ull), histogram,
                            m.measure, m.stop);
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r->measured, 500ms);
  EXPECT_EQ(r->ios, 1000u);
  EXPECT_EQ(r->writes, 400u);
  EXPECT_EQ(r->cpu, 300ms);
  EXPECT_EQ(r->latency.count(), 1000u);
  // The bucket's upper bound, in nanoseconds: about 10 µs (the buckets are a few % wide).
  EXPECT_GE(r->latency.percentile(50), 10'000u);
  EXPECT_LT(r->latency.percentile(50), 11'000u);
}

TEST(GuestTiming, AGuestCounterWithAnotherOriginIsShiftedBack) {
  const Marks m;
  // A KVM guest's TSC starts near zero: it reads far behind the host's (ahead, modulo 2^64).
  const std::uint64_t ahead = 0 - (m.measure.cycles - 7'000);
  auto r = bench_job_result(report_from(8'000, 8'000 + 400'000'000), {}, m.measure, m.stop, ahead);
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r->measured, 200ms);
  // Without the shift the same report starts before the VMM said Measure.
  EXPECT_FALSE(bench_job_result(report_from(8'000, 8'000 + 400'000'000), {}, m.measure, m.stop));
}

TEST(GuestTiming, AWindowThatCannotBeRightIsRefused) {
  const Marks m;
  const unsigned long long t = m.measure.cycles;
  for (const auto& [start, end] : {std::pair{t - 1, t + 100},   // started before Measure was set
                                   std::pair{t + 100, t + 100},  // no length
                                   std::pair{t + 100, t + 50}}) {  // ends before it starts
    auto r = bench_job_result(report_from(start, end), {}, m.measure, m.stop);
    ASSERT_FALSE(r) << start << ".." << end;
    EXPECT_NE(r.error().find("inconsistent"), std::string::npos) << r.error();
  }
  PhaseMark no_cpu = m.stop;
  no_cpu.cpu.reset();
  EXPECT_FALSE(bench_job_result(report_from(t + 1, t + 2), {}, m.measure, no_cpu));
}

}  // namespace
}  // namespace rf::bench
