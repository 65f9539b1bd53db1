#include "engine/bench_table.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

namespace rf::bench {
namespace {

RowSummary with_iops(double iops) {
  RowSummary s;
  s.iops = iops;
  return s;
}

TEST(BenchTableCell, TheMedianIsTheMiddleRunAndTheRangeItsEnds) {
  Cell cell;
  EXPECT_EQ(cell.median(), nullptr);
  EXPECT_EQ(cell.iops_range(), std::make_pair(0.0, 0.0));
  unsigned round = 0;
  for (double iops : {30.0, 10.0, 20.0}) cell.add_run(round++, with_iops(iops));
  ASSERT_NE(cell.median(), nullptr);
  EXPECT_EQ(cell.median()->iops, 20.0);
  EXPECT_EQ(cell.iops_range(), std::make_pair(10.0, 30.0));
  cell.add_run(round++, with_iops(40.0));
  EXPECT_EQ(cell.iops_in_round(1), 10.0);
  EXPECT_FALSE(cell.iops_in_round(7));
  EXPECT_EQ(cell.median()->iops, 30.0) << "an even count takes the upper middle run";
}

TEST(BenchTable, ARatioNeedsBothRowsToHaveRun) {
  BenchTable table;
  table.at("mediated", 8).add_run(0, with_iops(90));
  EXPECT_FALSE(table.ratio("mediated", "bare", 8));
  table.at("bare", 8).add_run(1, with_iops(100));
  EXPECT_FALSE(table.ratio("mediated", "bare", 8)) << "runs of different rounds are not paired";
  table.at("bare", 8).add_run(0, with_iops(100));
  ASSERT_TRUE(table.ratio("mediated", "bare", 8));
  EXPECT_DOUBLE_EQ(table.ratio("mediated", "bare", 8)->ratio, 0.9);
  EXPECT_EQ(table.ratio("mediated", "bare", 8)->pairs, 1u);
  EXPECT_FALSE(table.ratio("mediated", "bare", 1)) << "another depth";
  table.at("zero", 8).add_run(0, with_iops(0));
  EXPECT_FALSE(table.ratio("mediated", "zero", 8)) << "no ratio over a baseline that did nothing";
  EXPECT_TRUE(table.cell("nothing", 8).runs.empty()) << "a cell never filled is empty";
  EXPECT_TRUE(table.cell("nothing", 8).unsupported.empty());
}

TEST(BenchTable, TheLoopInterleavesRowsDepthsAndRepeats) {
  TableSpec spec;
  spec.rows = {*row_from_name("bare"), *row_from_name("mediated")};
  spec.depths = {1, 8};
  spec.repeat = 2;
  std::vector<std::string> order;
  std::size_t last_done = 0, totals = 0;
  const BenchTable table = run_bench_table(
      spec,
      [&](const RowSpec& row, std::uint32_t depth, unsigned rep) -> Result<JobOutcome, std::string> {
        order.push_back(row.name + "@" + std::to_string(depth) + "#" + std::to_string(rep));
        return JobOutcome{with_iops(1000.0 * depth + rep), rep == 1 ? 2u : 0u, -EIO};
      },
      [&](const RowSpec&, std::uint32_t, unsigned, std::size_t done, std::size_t total) {
        EXPECT_EQ(done, last_done + 1);
        last_done = done;
        totals = total;
      });
  // Every other round runs the rows in reverse, so the two rows' runs of a round are neighbours.
  EXPECT_EQ(order, (std::vector<std::string>{"bare@1#0", "mediated@1#0", "bare@8#0", "mediated@8#0", "mediated@1#1",
                                             "bare@1#1", "mediated@8#1", "bare@8#1"}));
  EXPECT_EQ(totals, 8u);
  const Cell& cell = table.cell("mediated", 8);
  EXPECT_EQ(cell.runs.size(), 2u);
  EXPECT_EQ(cell.errors, 2u);
  EXPECT_EQ(cell.first_error, -EIO);
  EXPECT_EQ(cell.rounds, (std::vector<unsigned>{0, 1}));
  const auto ratio = table.ratio("mediated", "bare", 8);
  ASSERT_TRUE(ratio);
  EXPECT_EQ(ratio->pairs, 2u) << "both rounds pair";
}

TEST(BenchTable, AStopRequestEndsTheTableBeforeTheNextRun) {
  TableSpec spec;
  spec.rows = {*row_from_name("bare"), *row_from_name("mediated")};
  spec.depths = {1};
  spec.repeat = 3;
  unsigned runs = 0;
  spec.stop_requested = [&runs] { return runs == 3; };
  const BenchTable table = run_bench_table(spec, [&](const RowSpec&, std::uint32_t, unsigned) -> Result<JobOutcome, std::string> {
    ++runs;
    return JobOutcome{with_iops(100), 0, 0};
  });
  EXPECT_EQ(runs, 3u);
  EXPECT_TRUE(table.interrupted);
  // Round 0 ran bare then mediated, round 1 mediated first (reversed), then the stop.
  EXPECT_EQ(table.cell("bare", 1).runs.size(), 1u) << "the runs before the stop are kept";
  EXPECT_EQ(table.cell("mediated", 1).runs.size(), 2u);
}

TEST(BenchTable, TheFastestRowIsTheOneWithTheHighestMedian) {
  BenchTable table;
  table.at("bare", 8).add_run(0, with_iops(300));
  table.at("bare-sqpoll", 8).add_run(0, with_iops(100));
  table.at("fio", 1).add_run(0, with_iops(900));
  EXPECT_EQ(table.fastest({"bare", "bare-sqpoll", "fio"}, 8), "bare");
  EXPECT_EQ(table.fastest({"bare", "bare-sqpoll", "fio"}, 1), "fio");
  EXPECT_FALSE(table.fastest({"bare", "bare-sqpoll"}, 1)) << "neither ran at iodepth 1";
}

TEST(BenchTable, ARowThatCannotRunSaysWhyAndIopollWithoutPollingIsNotTried) {
  TableSpec spec;
  spec.rows = {*row_from_name("bare-sqpoll-iopoll"), *row_from_name("kvm-mediated")};
  spec.depths = {1};
  spec.iopoll_unsupported = "vda has no poll queues";
  unsigned runs = 0;
  const BenchTable table = run_bench_table(spec, [&](const RowSpec&, std::uint32_t, unsigned) -> Result<JobOutcome, std::string> {
    ++runs;
    return unexpected(std::string("/dev/kvm is missing"));
  });
  EXPECT_EQ(runs, 1u) << "only the KVM row was tried";
  EXPECT_EQ(table.cell("bare-sqpoll-iopoll", 1).unsupported, "vda has no poll queues");
  EXPECT_EQ(table.cell("kvm-mediated", 1).unsupported, "/dev/kvm is missing");
  EXPECT_EQ(table.cell("kvm-mediated", 1).median(), nullptr);
}

TEST(BenchTable, AFailedRepeatDoesNotHideTheRunsThatSucceeded) {
  TableSpec spec;
  spec.rows = {*row_from_name("linux-passthrough")};
  spec.depths = {1, 8};
  spec.repeat = 3;
  const BenchTable table = run_bench_table(spec, [](const RowSpec&, std::uint32_t depth, unsigned rep) -> Result<JobOutcome, std::string> {
    if (depth == 8 || rep == 0) return unexpected(fmt::format("run {} at {} failed", rep, depth));
    JobOutcome o;
    o.summary.iops = 1000.0 * (rep + 1);
    return o;
  });
  const Cell& some = table.cell("linux-passthrough", 1);
  EXPECT_EQ(some.runs.size(), 2u);
  EXPECT_EQ(some.failed_runs, 1u);
  EXPECT_EQ(some.failure, "run 0 at 1 failed");
  EXPECT_TRUE(some.unsupported.empty()) << "two runs succeeded: the cell has numbers";
  ASSERT_NE(some.median(), nullptr);
  const Cell& none = table.cell("linux-passthrough", 8);
  EXPECT_EQ(none.failed_runs, 3u);
  EXPECT_EQ(none.unsupported, "run 0 at 8 failed") << "no run succeeded: the first reason";
}

}  // namespace
}  // namespace rf::bench
