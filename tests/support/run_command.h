// Runs a shell command and collects its output and exit status, for tests that check a
// program from the outside (the CLI, nm on the guest driver).
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

namespace rf::test {

struct CommandRun {
  int status = -1;  // the exit status, or -1 if it did not exit normally
  std::string output;
};

inline CommandRun run_command(const std::string& command) {
  CommandRun run;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return run;
  std::array<char, 4096> chunk{};
  std::size_t n = 0;
  while ((n = std::fread(chunk.data(), 1, chunk.size(), pipe)) > 0) run.output.append(chunk.data(), n);
  const int raw = ::pclose(pipe);
  run.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  return run;
}

}  // namespace rf::test
