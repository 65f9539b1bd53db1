#include "engine/plot.h"

#include <unistd.h>

#include <optional>
#include <string_view>

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

// One panel: a line per series, its points inline; `point(series, i)` gives the values at the
// i-th iodepth after the x coordinate, or nothing where the row has no point.
template <typename Point>
void add_panel(std::string& s, const PlotInput& input, std::string_view title, std::string_view ylabel,
               std::string_view style, Point&& point) {
  s += fmt::format("set title '{}'\nset ylabel '{}'\nplot ", title, ylabel);
  for (std::size_t r = 0; r < input.series.size(); ++r) {
    s += fmt::format("{}'-' {} title {}", r == 0 ? "" : ", ", style, quoted(input.series[r].row));
  }
  s += "\n";
  for (const PlotSeries& series : input.series) {
    for (std::size_t i = 0; i < input.iodepths.size(); ++i) {
      if (auto values = point(series, i)) s += fmt::format("{} {}\n", i, *values);
    }
    s += "e\n";
  }
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
  add_panel(s, input, "kIOPS (median, min-max)", "kIOPS", "using 1:2:3:4 with yerrorlines",
            [](const PlotSeries& series, std::size_t i) -> std::optional<std::string> {
              if (i >= series.median_kiops.size() || series.median_kiops[i] <= 0) return std::nullopt;
              return fmt::format("{:.3f} {:.3f} {:.3f}", series.median_kiops[i], series.min_kiops[i],
                                 series.max_kiops[i]);
            });
  add_panel(s, input, "kIOPS per host CPU-second (median run)", "kIOPS per CPU-second", "using 1:2 with linespoints",
            [](const PlotSeries& series, std::size_t i) -> std::optional<std::string> {
              if (i >= series.kiops_per_cpu_second.size() || series.kiops_per_cpu_second[i] <= 0) return std::nullopt;
              return fmt::format("{:.3f}", series.kiops_per_cpu_second[i]);
            });
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
