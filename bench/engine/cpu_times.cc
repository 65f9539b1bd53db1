#include "engine/cpu_times.h"

#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

namespace rf::bench {

CpuTimes own_cpu_times() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  return CpuTimes{std::chrono::seconds(usage.ru_utime.tv_sec) + std::chrono::microseconds(usage.ru_utime.tv_usec),
                  std::chrono::seconds(usage.ru_stime.tv_sec) + std::chrono::microseconds(usage.ru_stime.tv_usec)};
}

std::optional<CpuTimes> process_cpu_times(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return std::nullopt;
  // The command name (field 2) is in parentheses and may hold spaces: parse after the last ')'.
  const auto paren = line.rfind(')');
  if (paren == std::string::npos) return std::nullopt;
  std::istringstream fields(line.substr(paren + 1));
  std::string skip;
  for (int field = 3; field <= 13; ++field) fields >> skip;  // state .. cmajflt
  unsigned long long utime = 0, stime = 0;  // fields 14 and 15
  if (!(fields >> utime >> stime)) return std::nullopt;
  const long hz = ::sysconf(_SC_CLK_TCK);
  if (hz <= 0) return std::nullopt;
  const auto tick = std::chrono::nanoseconds(1'000'000'000LL / hz);
  return CpuTimes{tick * static_cast<long long>(utime), tick * static_cast<long long>(stime)};
}

}  // namespace rf::bench
