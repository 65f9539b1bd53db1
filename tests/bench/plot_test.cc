#include "engine/plot.h"

#include <gtest/gtest.h>

namespace rf::bench {
namespace {

TEST(Plot, TheScriptHasOneSeriesPerRowAndSkipsMissingPoints) {
  PlotInput input{"it's a title", {1, 8, 32}, {}};
  input.series.push_back({"bare", {10, 40, 50}, {9, 38, 49}, {11, 41, 52}, {100, 300, 0}});
  input.series.push_back({"bare-sqpoll-iopoll", {0, 0, 0}, {0, 0, 0}, {0, 0, 0}, {0, 0, 0}});
  const std::string script = gnuplot_script(input, "/tmp/o'ut.png");
  EXPECT_NE(script.find("set output '/tmp/o''ut.png'"), std::string::npos) << script;  // quote doubled
  EXPECT_NE(script.find("set multiplot layout 1,2 title 'it''s a title'"), std::string::npos) << script;
  EXPECT_NE(script.find("set xtics ('1' 0, '8' 1, '32' 2)"), std::string::npos) << script;
  EXPECT_NE(script.find("title 'bare'"), std::string::npos) << script;
  EXPECT_NE(script.find("1 40.000 38.000 41.000\n"), std::string::npos) << script;
  // The unsupported row has a series but no points: its data block is empty.
  EXPECT_NE(script.find("2 50.000 49.000 52.000\ne\ne\n"), std::string::npos) << script;
  // The efficiency panel: a point per depth with a CPU figure (none at iodepth 32 here).
  EXPECT_NE(script.find("kIOPS per host CPU-second"), std::string::npos) << script;
  EXPECT_NE(script.find("0 100.000\n1 300.000\ne\ne\nunset multiplot\n"), std::string::npos) << script;
}

}  // namespace
}  // namespace rf::bench
