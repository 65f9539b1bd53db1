#include "engine/plot.h"

#include <unistd.h>

#include <fmt/format.h>

#include "engine/child_program.h"

namespace rf::bench {

namespace {

// gnuplot strings are single-quoted; a quote inside is doubled.
std::string quoted(const std::string& text) {
  std::string out = "'";
  for (char c : text) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

}  // namespace

std::string gnuplot_script(const PlotInput& input, const std::string& png_path) {
  std::string s;
  s += "set terminal png size 1600,600\n";
  s += "set output " + quoted(png_path) + "\n";
  s += "set multiplot layout 1,2 title " + quoted(input.title) + " noenhanced\n";
  s += "set xlabel 'iodepth'\nset key top left noenhanced\nset grid\nset yrange [0:*]\n";
  s += "set xtics (";
  for (std::size_t i = 0; i < input.iodepths.size(); ++i) {
    s += fmt::format("{}'{}' {}", i == 0 ? "" : ", ", input.iodepths[i], i);
  }
  s += ")\nset xrange [-0.5:" + fmt::format("{}", static_cast<double>(input.iodepths.size()) - 0.5) + "]\n";
  // Left: throughput with its spread; right: what one second of host CPU buys.
  s += "set title 'kIOPS (median, min-max)'\nset ylabel 'kIOPS'\nplot ";
  for (std::size_t r = 0; r < input.series.size(); ++r) {
    s += fmt::format("{}'-' using 1:2:3:4 with yerrorlines title {}", r == 0 ? "" : ", ", quoted(input.series[r].row));
  }
  s += "\n";
  for (const PlotSeries& series : input.series) {
    for (std::size_t i = 0; i < input.iodepths.size() && i < series.median_kiops.size(); ++i) {
      if (series.median_kiops[i] <= 0) continue;
      s += fmt::format("{} {:.3f} {:.3f} {:.3f}\n", i, series.median_kiops[i], series.min_kiops[i], series.max_kiops[i]);
    }
    s += "e\n";
  }
  s += "set title 'kIOPS per host CPU-second (median run)'\nset ylabel 'kIOPS per CPU-second'\nplot ";
  for (std::size_t r = 0; r < input.series.size(); ++r) {
    s += fmt::format("{}'-' using 1:2 with linespoints title {}", r == 0 ? "" : ", ", quoted(input.series[r].row));
  }
  s += "\n";
  for (const PlotSeries& series : input.series) {
    for (std::size_t i = 0; i < input.iodepths.size() && i < series.kiops_per_cpu_second.size(); ++i) {
      if (series.kiops_per_cpu_second[i] <= 0) continue;
      s += fmt::format("{} {:.3f}\n", i, series.kiops_per_cpu_second[i]);
    }
    s += "e\n";
  }
  s += "unset multiplot\n";
  return s;
}

Result<void, std::string> draw_plot(const PlotInput& input, const std::string& png_path) {
  auto run = run_program({"gnuplot"}, gnuplot_script(input, png_path));
  if (!run) return unexpected(run.error() + " (install Debian's gnuplot-nox)");
  if (run->exit_status != 0) {
    return unexpected(fmt::format("gnuplot failed drawing {} (exit status {})", png_path, run->exit_status));
  }
  if (::access(png_path.c_str(), R_OK) != 0) return unexpected(fmt::format("gnuplot did not write {}", png_path));
  return {};
}

}  // namespace rf::bench
