#include "support/memory_cgroup.h"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>

#include <fmt/format.h>

namespace rf::test {

namespace {

std::optional<std::string> read_text(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

bool write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  out.flush();
  return static_cast<bool>(out);
}

std::uint64_t read_number(const std::string& path) {
  const auto text = read_text(path);
  if (!text) return 0;
  try {
    return std::stoull(*text);
  } catch (...) {
    return 0;  // "max"
  }
}

// The value after `key ` in a "key value" file (memory.events, memory.oom_control).
std::uint64_t read_keyed(const std::string& path, const std::string& key) {
  std::ifstream in(path);
  for (std::string k; in >> k;) {
    std::uint64_t v = 0;
    if (!(in >> v)) break;
    if (k == key) return v;
  }
  return 0;
}

struct Hierarchy {
  std::string parent;  // the process's own memory cgroup directory
  bool v2 = true;
};

// Where this process's memory cgroup lives, v2 first.
Result<Hierarchy, std::string> find_hierarchy() {
  std::ifstream cgroups("/proc/self/cgroup");
  std::string v2_path, v1_path;
  for (std::string line; std::getline(cgroups, line);) {
    // "0::/path" (v2) or "4:memory:/path" (v1)
    const auto first = line.find(':');
    const auto second = line.find(':', first + 1);
    if (first == std::string::npos || second == std::string::npos) continue;
    const std::string controllers = line.substr(first + 1, second - first - 1);
    const std::string path = line.substr(second + 1);
    if (controllers.empty()) v2_path = path;
    if (controllers == "memory" || controllers.find("memory,") != std::string::npos ||
        controllers.find(",memory") != std::string::npos) {
      v1_path = path;
    }
  }
  for (const char* root : {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}) {
    if (v2_path.empty()) break;
    const std::string dir = std::string(root) + v2_path;
    const auto controllers = read_text(dir + "/cgroup.controllers");
    // A child gets the memory controller only if this group offers it to its children.
    const auto subtree = read_text(dir + "/cgroup.subtree_control");
    if (controllers && controllers->find("memory") != std::string::npos && subtree &&
        subtree->find("memory") != std::string::npos) {
      return Hierarchy{dir, true};
    }
  }
  if (!v1_path.empty()) {
    const std::string dir = "/sys/fs/cgroup/memory" + v1_path;
    if (::access((dir + "/memory.limit_in_bytes").c_str(), W_OK) == 0 || ::access(dir.c_str(), W_OK) == 0) {
      return Hierarchy{dir, false};
    }
  }
  return unexpected(std::string("no writable memory cgroup controller for this process (cgroup v2 with memory in "
                                "cgroup.subtree_control, or the v1 memory hierarchy)"));
}

}  // namespace

const Feature& memory_cgroup_feature() {
  static const Feature feature = [] {
    Feature f;
    if (::geteuid() != 0) {
      f.missing_in_kernel = true;
      f.reason = "making a memory cgroup needs root";
      return f;
    }
    auto cg = MemoryCgroup::enter(0);
    if (!cg) {
      f.missing_in_kernel = true;  // the machine offers no memory controller we may use
      f.reason = cg.error();
      return f;
    }
    f.available = true;
    return f;
  }();
  return feature;
}

Result<MemoryCgroup, std::string> MemoryCgroup::enter(std::uint64_t limit_bytes) {
  auto hierarchy = find_hierarchy();
  if (!hierarchy) return unexpected(std::move(hierarchy).error());
  static std::atomic<int> serial{0};
  const std::string path = fmt::format("{}/ringfence-test-{}-{}", hierarchy->parent, ::getpid(), serial++);
  if (::mkdir(path.c_str(), 0755) != 0) return unexpected(fmt::format("mkdir {}: {}", path, std::strerror(errno)));
  MemoryCgroup cg(path, hierarchy->parent, hierarchy->v2);
  if (limit_bytes != 0) {
    const std::string file = path + (cg.v2_ ? "/memory.max" : "/memory.limit_in_bytes");
    if (!write_text(file, std::to_string(limit_bytes))) return unexpected(fmt::format("writing {}", file));
  }
  if (!write_text(path + "/cgroup.procs", std::to_string(::getpid()))) {
    return unexpected(fmt::format("moving this process into {}", path));
  }
  return cg;
}

MemoryCgroup::MemoryCgroup(MemoryCgroup&& other) noexcept
    : path_(std::move(other.path_)), parent_(std::move(other.parent_)), v2_(other.v2_) {
  other.path_.clear();
}

MemoryCgroup::~MemoryCgroup() {
  if (path_.empty()) return;
  (void)write_text(parent_ + "/cgroup.procs", std::to_string(::getpid()));
  // The group may hold charges (page cache) for a moment after its last task left; rmdir
  // succeeds once only those remain (they move to the parent).
  for (int i = 0; i < 100 && ::rmdir(path_.c_str()) != 0 && errno == EBUSY; ++i) ::usleep(10'000);
}

std::uint64_t MemoryCgroup::usage() const {
  return read_number(path_ + (v2_ ? "/memory.current" : "/memory.usage_in_bytes"));
}

std::optional<std::uint64_t> MemoryCgroup::peak() const {
  const std::string file = path_ + (v2_ ? "/memory.peak" : "/memory.max_usage_in_bytes");
  if (::access(file.c_str(), R_OK) != 0) return std::nullopt;
  return read_number(file);
}

std::uint64_t MemoryCgroup::kernel_usage() const {
  if (!v2_) return read_number(path_ + "/memory.kmem.usage_in_bytes");
  // "kernel" (6.0+) sums what the kernel allocates for the group; older kernels list the parts.
  const std::uint64_t kernel = read_keyed(path_ + "/memory.stat", "kernel");
  if (kernel != 0) return kernel;
  return read_keyed(path_ + "/memory.stat", "slab") + read_keyed(path_ + "/memory.stat", "kernel_stack") +
         read_keyed(path_ + "/memory.stat", "pagetables") + read_keyed(path_ + "/memory.stat", "percpu");
}

std::optional<std::uint64_t> MemoryCgroup::kernel_peak() const {
  if (v2_) return std::nullopt;
  return read_number(path_ + "/memory.kmem.max_usage_in_bytes");
}

std::uint64_t MemoryCgroup::oom_kills() const {
  return v2_ ? read_keyed(path_ + "/memory.events", "oom_kill") : read_keyed(path_ + "/memory.oom_control", "oom_kill");
}

std::uint64_t host_memory_available() {
  std::ifstream meminfo("/proc/meminfo");
  for (std::string key; meminfo >> key;) {
    std::uint64_t kib = 0;
    meminfo >> kib;
    if (key == "MemAvailable:") return kib * 1024;
    meminfo.ignore(64, '\n');
  }
  return 0;
}

}  // namespace rf::test
