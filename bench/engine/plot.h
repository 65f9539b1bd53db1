// `ringfence bench --plot FILE.png`: two panels against iodepth, one line per row: kIOPS (the
// median, with min–max error bars when the table was repeated) and kIOPS per host CPU-second
// (the median run's), drawn by gnuplot (Debian's gnuplot-nox).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "util/result.h"

namespace rf::bench {

struct PlotSeries {
  std::string row;
  // Per iodepth, in the order of PlotInput::iodepths; a row that did not run at a depth has
  // no point there (median <= 0).
  std::vector<double> median_kiops, min_kiops, max_kiops;
  std::vector<double> kiops_per_cpu_second;  // the median run's; <= 0: no point
};

struct PlotInput {
  std::string title;
  std::vector<std::uint32_t> iodepths;
  std::vector<PlotSeries> series;
};

// The gnuplot script that draws `input` into `png_path`, data inline.
std::string gnuplot_script(const PlotInput& input, const std::string& png_path);
// Runs gnuplot on the script; an error says why (gnuplot missing, failed).
Result<void, std::string> draw_plot(const PlotInput& input, const std::string& png_path);

}  // namespace rf::bench
