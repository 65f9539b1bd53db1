// Running a helper program the bench relies on (fio, gnuplot): found on PATH, fed `input` on
// stdin, its stdout collected, its exit status checked.
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

#include "util/result.h"

namespace rf::bench {

struct ProgramRun {
  int exit_status = -1;  // -1 if it did not exit normally
  std::string output;    // stdout
};

// `argv[0]` is looked up on PATH. An error means it could not be started at all. `started`, if
// set, is told the child's pid once it runs (before its output is read).
Result<ProgramRun, std::string> run_program(const std::vector<std::string>& argv, const std::string& input = "",
                                            const std::function<void(pid_t)>& started = {});

}  // namespace rf::bench
