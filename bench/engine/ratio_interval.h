// How sure a ratio between two rows is. The table runs its rows in rounds, alternating (every
// row once per round, the order reversed every other round), so the two runs of a round saw the
// same machine within seconds of each other: a round gives one paired ratio, and a neighbour's
// burst or a slow drift moves both of its runs alike. The estimate is the geometric mean of the
// rounds' ratios, and its 95% interval is Student's t on their logarithms (exact for
// log-normal run-to-run noise, and wider than a bootstrap's at the 3-10 rounds a table has,
// where a percentile bootstrap is known to be too narrow). A target is then met or missed only
// when the whole interval says so; otherwise it is undecided.
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string_view>

namespace rf::bench {

struct RatioEstimate {
  double ratio = 0;           // the geometric mean of the paired ratios
  double low = 0, high = 0;   // its 95% interval; equal to `ratio` with one pair
  std::size_t pairs = 0;      // rounds in which both rows ran
};

// One round's IOPS of the two rows compared.
struct RoundPair {
  double numerator = 0, denominator = 0;
};

// The estimate over the rounds whose two runs both did I/O; nullopt when none did.
std::optional<RatioEstimate> paired_ratio(std::span<const RoundPair> rounds);

// The two-sided 95% quantile of Student's t with `df` degrees of freedom (df ≥ 1).
double student_t_975(std::size_t df);

enum class Verdict { Met, Missed, Undecided };
std::string_view verdict_name(Verdict verdict);  // "met", "MISSED", "undecided"

// Whether `estimate` lies in [low, high]: met when its whole interval does, missed when none of
// it does, undecided otherwise (always with a single pair: one run has no interval).
Verdict decide(const RatioEstimate& estimate, double low, double high);

}  // namespace rf::bench
