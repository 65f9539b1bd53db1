#include "cli/workload_cells.h"

#include <fmt/format.h>

namespace rf::cli {

std::string workload_io_cell(std::uint64_t ios, const guest::WorkloadReport* report) {
  if (report == nullptr) return "no report";
  return fmt::format("{} ({} + {} + {})", ios, report->writes, report->reads, report->flushes);
}

std::string guest_check_cell(const guest::WorkloadReport* report) {
  if (report == nullptr) return "no report";
  return fmt::format("{} ({} errors, {} mismatched blocks)", guest::workload_status_name(report->status),
                     report->errors, report->mismatches);
}

std::string disk_check_cell(std::uint64_t checked, std::uint64_t mismatched) {
  return fmt::format("{} of {} blocks hold the last pass's data", checked - mismatched, checked);
}

std::string seconds_cell(std::chrono::nanoseconds elapsed) {
  return fmt::format("{:.3f} s", std::chrono::duration<double>(elapsed).count());
}

std::string kiops_cell(std::uint64_t ios, std::chrono::nanoseconds elapsed, int decimals) {
  const double s = std::chrono::duration<double>(elapsed).count();
  return fmt::format("{:.{}f}", s > 0 ? static_cast<double>(ios) / s / 1000 : 0.0, decimals);
}

}  // namespace rf::cli
