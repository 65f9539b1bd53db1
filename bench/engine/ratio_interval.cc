#include "engine/ratio_interval.h"

#include <array>
#include <cmath>
#include <vector>

namespace rf::bench {

double student_t_975(std::size_t df) {
  // t(0.975, df) for df = 1..30; beyond, the normal's 1.96 is within 2% of it.
  static constexpr std::array<double, 30> kTable = {
      12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
      2.120,  2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042};
  if (df == 0) return INFINITY;
  if (df <= kTable.size()) return kTable[df - 1];
  return df <= 60 ? 2.000 : df <= 120 ? 1.980 : 1.960;
}

std::optional<RatioEstimate> paired_ratio(std::span<const RoundPair> rounds) {
  std::vector<double> logs;
  for (const RoundPair& r : rounds) {
    if (r.numerator > 0 && r.denominator > 0) logs.push_back(std::log(r.numerator / r.denominator));
  }
  if (logs.empty()) return std::nullopt;
  const double n = static_cast<double>(logs.size());
  double mean = 0;
  for (double x : logs) mean += x;
  mean /= n;
  RatioEstimate e;
  e.pairs = logs.size();
  e.ratio = std::exp(mean);
  e.low = e.high = e.ratio;
  if (logs.size() >= 2) {
    double squares = 0;
    for (double x : logs) squares += (x - mean) * (x - mean);
    const double half_width = student_t_975(logs.size() - 1) * std::sqrt(squares / (n - 1) / n);
    e.low = std::exp(mean - half_width);
    e.high = std::exp(mean + half_width);
  }
  return e;
}

std::string_view verdict_name(Verdict verdict) {
  switch (verdict) {
    case Verdict::Met: return "met";
    case Verdict::Missed: return "MISSED";
    case Verdict::Undecided: return "undecided";
  }
  return "?";
}

Verdict decide(const RatioEstimate& estimate, double low, double high) {
  if (estimate.pairs < 2) return Verdict::Undecided;
  if (estimate.low >= low && estimate.high <= high) return Verdict::Met;
  if (estimate.high < low || estimate.low > high) return Verdict::Missed;
  return Verdict::Undecided;
}

}  // namespace rf::bench
