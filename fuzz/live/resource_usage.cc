#include "fuzz/live/resource_usage.h"

#include <filesystem>
#include <fstream>
#include <string_view>

#include <fmt/format.h>

namespace rf::fuzz {

namespace {

// "VmRSS:     1234 kB" -> 1234.
std::uint64_t status_field(const std::string& text, std::string_view name) {
  const auto at = text.find(name);
  if (at == std::string::npos) return 0;
  std::uint64_t value = 0;
  for (std::size_t i = at + name.size(); i < text.size() && text[i] != '\n'; ++i) {
    if (text[i] >= '0' && text[i] <= '9') value = value * 10 + static_cast<std::uint64_t>(text[i] - '0');
  }
  return value;
}

}  // namespace

ResourceUsage ResourceUsage::now() {
  ResourceUsage u;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec); !ec && it != std::filesystem::directory_iterator();
       it.increment(ec)) {
    ++u.fds;
  }
  if (u.fds > 0) --u.fds;  // the directory iterator's own descriptor
  std::ifstream in("/proc/self/status");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  u.threads = status_field(text, "\nThreads:");
  u.rss_kib = status_field(text, "\nVmRSS:");
  u.pinned_kib = status_field(text, "\nVmPin:");
  return u;
}

std::optional<std::string> resource_growth(const ResourceUsage& baseline, const ResourceUsage& now,
                                           std::uint64_t rss_slack_kib) {
  if (now.fds > baseline.fds) return fmt::format("the VMM holds {} descriptors, {} more than before", now.fds, now.fds - baseline.fds);
  if (now.threads > baseline.threads) {
    return fmt::format("the VMM has {} threads, {} more than before", now.threads, now.threads - baseline.threads);
  }
  if (now.pinned_kib > baseline.pinned_kib) {
    return fmt::format("{} KiB of memory are still pinned, {} KiB more than before", now.pinned_kib,
                       now.pinned_kib - baseline.pinned_kib);
  }
  if (now.rss_kib > baseline.rss_kib + rss_slack_kib) {
    return fmt::format("the VMM's resident memory grew from {} to {} KiB (allowed: {} KiB more)", baseline.rss_kib, now.rss_kib,
                       rss_slack_kib);
  }
  return std::nullopt;
}

}  // namespace rf::fuzz
