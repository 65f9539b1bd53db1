#include "engine/child_program.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "util/unique_fd.h"

extern char** environ;

namespace rf::bench {

namespace {

Result<std::pair<UniqueFd, UniqueFd>, std::string> make_pipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return unexpected(fmt::format("pipe: {}", std::strerror(errno)));
  return std::pair<UniqueFd, UniqueFd>{UniqueFd(fds[0]), UniqueFd(fds[1])};
}

}  // namespace

Result<ProgramRun, std::string> run_program(const std::vector<std::string>& args, const std::string& input,
                                            const std::function<void(pid_t)>& started) {
  auto in = make_pipe();
  if (!in) return unexpected(std::move(in).error());
  auto out = make_pipe();
  if (!out) return unexpected(std::move(out).error());
  std::vector<std::string> copy = args;
  std::vector<char*> argv;
  for (std::string& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  ::posix_spawn_file_actions_init(&actions);
  ::posix_spawn_file_actions_adddup2(&actions, in->first.get(), STDIN_FILENO);
  ::posix_spawn_file_actions_adddup2(&actions, out->second.get(), STDOUT_FILENO);
  pid_t pid = -1;
  const int rc = ::posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  ::posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return unexpected(fmt::format("cannot run {}: {}", args.front(), std::strerror(rc)));
  in->first.reset();
  out->second.reset();
  if (started) started(pid);

  // Small inputs only (a gnuplot script): written whole before the output is read.
  for (std::size_t done = 0; done < input.size();) {
    const ssize_t n = ::write(in->second.get(), input.data() + done, input.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<std::size_t>(n);
  }
  in->second.reset();
  ProgramRun run;
  std::array<char, 4096> chunk{};
  for (ssize_t n; (n = ::read(out->first.get(), chunk.data(), chunk.size())) != 0;) {
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    run.output.append(chunk.data(), static_cast<std::size_t>(n));
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  run.exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

}  // namespace rf::bench
