// io_uring's kernel threads of this process (iou-sqp-*, the SQPOLL threads; iou-wrk-*, io-wq
// workers): they are threads of the process that owns the ring, so /proc/self/task lists them.
#pragma once

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace rf::test {

// The thread ids of this process's threads whose names start with `prefix`.
inline std::vector<std::string> io_uring_thread_ids(const std::string& prefix = "iou-") {
  std::vector<std::string> tids;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm(task.path() / "comm");
    std::string name;
    if (std::getline(comm, name) && name.starts_with(prefix)) tids.push_back(task.path().filename().string());
  }
  return tids;
}

inline unsigned io_uring_threads(const std::string& prefix = "iou-") {
  return static_cast<unsigned>(io_uring_thread_ids(prefix).size());
}

}  // namespace rf::test
