#include "ring/ring_fdinfo.h"

#include <charconv>
#include <fstream>
#include <iterator>
#include <thread>

#include <fmt/format.h>

namespace rf {

namespace {

std::optional<std::uint64_t> field(std::string_view text, std::string_view name) {
  const std::string key = fmt::format("\n{}:", name);
  const auto at = text.find(key);
  if (at == std::string_view::npos) return std::nullopt;
  std::size_t i = at + key.size();
  while (i < text.size() && (text[i] == '\t' || text[i] == ' ')) ++i;
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data() + i, text.data() + text.size(), value);
  if (ec != std::errc{} || end == text.data() + i) return std::nullopt;
  return value;
}

}  // namespace

std::optional<KernelRingCounters> parse_ring_fdinfo(std::string_view text) {
  const std::string with_newline = "\n" + std::string(text);
  const auto head = field(with_newline, "CachedSqHead");
  const auto tail = field(with_newline, "CachedCqTail");
  const auto list = with_newline.find("\nCqOverflowList:\n");
  if (!head || !tail || list == std::string::npos) return std::nullopt;
  KernelRingCounters c;
  c.sq_head = static_cast<std::uint32_t>(*head);
  c.cq_tail = static_cast<std::uint32_t>(*tail);
  if (const auto thread = field(with_newline, "SqThread")) c.sq_thread = static_cast<int>(*thread);  // "-1" does not parse: none
  // One "  user_data=..." line per overflowed CQE, up to the next section.
  for (std::size_t at = list + 17; at < with_newline.size();) {
    const auto eol = with_newline.find('\n', at);
    const std::string_view line(with_newline.data() + at, (eol == std::string::npos ? with_newline.size() : eol) - at);
    if (line.rfind("  user_data=", 0) != 0) break;
    ++c.overflow;
    if (eol == std::string::npos) break;
    at = eol + 1;
  }
  return c;
}

Result<KernelRingCounters, std::string> read_ring_fdinfo(int ring_fd) {
  std::ifstream in(fmt::format("/proc/self/fdinfo/{}", ring_fd));
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto counters = parse_ring_fdinfo(text);
  if (!counters) return unexpected(fmt::format("/proc/self/fdinfo/{} has no io_uring counters (CachedSqHead, CachedCqTail, CqOverflowList)", ring_fd));
  return *counters;
}

Result<KernelRingCounters, std::string> read_ring_fdinfo_within(int ring_fd, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto counters = read_ring_fdinfo(ring_fd);
  while (!counters && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    counters = read_ring_fdinfo(ring_fd);
  }
  return counters;
}

}  // namespace rf
