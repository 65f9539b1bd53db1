#include "ring/ring_error.h"

#include <cstring>

#include <fmt/format.h>

namespace rf {

std::string errno_label(int err) {
  const char* name = ::strerrorname_np(err);
  if (name == nullptr) return fmt::format("errno {} ({})", err, std::strerror(err));
  return fmt::format("{} ({})", name, std::strerror(err));
}

}  // namespace rf
