#include "ring/ring_fdinfo.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <memory>
#include <thread>

#include <fmt/format.h>

#include "util/unique_fd.h"

namespace rf {

namespace {

// The value after "\n<name>:" (or "<name>:" at the very start), skipping tabs and spaces.
std::optional<std::uint64_t> field(std::string_view text, std::string_view name) {
  std::size_t at = std::string_view::npos;
  if (text.substr(0, name.size()) == name && text.size() > name.size() && text[name.size()] == ':') {
    at = 0;
  } else {
    const std::string key = fmt::format("\n{}:", name);
    const auto found = text.find(key);
    if (found != std::string_view::npos) at = found + 1;
  }
  if (at == std::string_view::npos) return std::nullopt;
  std::size_t i = at + name.size() + 1;
  while (i < text.size() && (text[i] == '\t' || text[i] == ' ')) ++i;
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data() + i, text.data() + text.size(), value);
  if (ec != std::errc{} || end == text.data() + i) return std::nullopt;
  return value;
}

}  // namespace

std::optional<KernelRingCounters> parse_ring_fdinfo(std::string_view text, bool complete) {
  const auto head = field(text, "CachedSqHead");
  const auto tail = field(text, "CachedCqTail");
  if (!head || !tail) return std::nullopt;
  constexpr std::string_view kList = "\nCqOverflowList:\n";
  const auto list = text.find(kList);
  // A complete text always has the section; a text cut short may end before it.
  if (list == std::string_view::npos && complete) return std::nullopt;
  KernelRingCounters c;
  c.sq_head = static_cast<std::uint32_t>(*head);
  c.cq_tail = static_cast<std::uint32_t>(*tail);
  c.complete = complete;
  if (const auto thread = field(text, "SqThread")) c.sq_thread = static_cast<int>(*thread);  // "-1" does not parse: none
  if (list == std::string_view::npos) return c;
  // One "  user_data=..." line per overflowed CQE, up to the next section.
  for (std::size_t at = list + kList.size(); at < text.size();) {
    const auto eol = text.find('\n', at);
    if (eol == std::string_view::npos) break;  // a line cut short by the read limit is not counted
    if (text.substr(at, 12) != "  user_data=") break;
    ++c.overflow;
    at = eol + 1;
  }
  return c;
}

std::size_t ring_fdinfo_bytes(std::uint32_t sq_entries, std::uint32_t cq_entries, std::size_t files,
                              std::size_t buffers, std::uint64_t bounded_entries) {
  // Generous line widths (a 20-digit user_data, a 10-digit res): the fixed part is about 400
  // bytes, a CQE line at most 70, an SQE line (only with an SQ index array) at most 160, a file
  // line about 40 (a 32-byte name), a buffer line 40, a poll or overflow line 70.
  const std::uint64_t bytes = 4096 + std::uint64_t{sq_entries} * 160 + std::uint64_t{cq_entries} * 70 +
                              std::uint64_t{files} * 48 + std::uint64_t{buffers} * 48 + bounded_entries * 70;
  return static_cast<std::size_t>(bytes);
}

Result<KernelRingCounters, std::string> read_ring_fdinfo(int ring_fd, std::size_t max_bytes) {
  const std::string path = fmt::format("/proc/self/fdinfo/{}", ring_fd);
  UniqueFd file(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!file) return unexpected(fmt::format("{}: {}", path, std::strerror(errno)));
  // One buffer of the caller's bound, read to the end of the text or to the bound.
  const auto buffer = std::make_unique_for_overwrite<char[]>(max_bytes);
  std::size_t used = 0;
  bool complete = false;
  while (used < max_bytes) {
    const ssize_t n = ::read(file.get(), buffer.get() + used, max_bytes - used);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return unexpected(fmt::format("{}: {}", path, std::strerror(errno)));
    if (n == 0) {
      complete = true;
      break;
    }
    used += static_cast<std::size_t>(n);
  }
  auto counters = parse_ring_fdinfo(std::string_view(buffer.get(), used), complete);
  if (!counters) {
    return unexpected(fmt::format("{} has no io_uring counters (CachedSqHead, CachedCqTail, CqOverflowList)", path));
  }
  return *counters;
}

Result<KernelRingCounters, std::string> read_ring_fdinfo_within(int ring_fd, std::chrono::milliseconds timeout,
                                                                std::size_t max_bytes) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto counters = read_ring_fdinfo(ring_fd, max_bytes);
  while (!counters && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    counters = read_ring_fdinfo(ring_fd, max_bytes);
  }
  return counters;
}

}  // namespace rf
