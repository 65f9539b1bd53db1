// BlkServer: the listening side of `ringfence vhost-user-blk`. It serves one front-end
// connection at a time, message by message (BlkBackend), and outlives every connection: a
// front-end that closes, dies, or sends a message the back-end refuses has its connection
// closed with a logged reason, its queues stopped and its memory unmapped, and the server
// accepts the next one (QEMU reconnecting after a restart, or a new QEMU). A second front-end
// that connects while one is served is told nothing and closed at once, with a log line.
//
// A front-end that stops in the middle of a message cannot hold the server: a message must
// arrive whole within the message timeout (kMessageTimeout by default) once its first byte has.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "disk/disk.h"
#include "util/unique_fd.h"
#include "vhost_user/blk_backend.h"

namespace rf::vhost_user {

inline constexpr std::chrono::seconds kMessageTimeout{5};

struct BlkServerOptions {
  std::string socket_path;
  BlkBackendConfig backend;
  std::function<void(std::string_view)> log;  // one line per event; may be empty
  std::chrono::milliseconds message_timeout = kMessageTimeout;
};

struct BlkServerStats {
  std::uint64_t connections = 0;  // served
  std::uint64_t turned_away = 0;  // connected while another was served
  std::uint64_t refused_messages = 0;  // connections closed because of a message
};

class BlkServer {
 public:
  // Binds and listens on the socket path. A stale socket file (nobody listening) is replaced; a
  // live one, or any other file, is refused. `disk` is the disk as opened at start: the server
  // closes it and opens it again while a guest's queues run (disk_lease.h).
  static Result<std::unique_ptr<BlkServer>, std::string> listen(Disk disk, BlkServerOptions options);
  ~BlkServer();  // removes the socket file

  // Serves connections until stop() is called (from any thread, or a signal handler's thread).
  void run();
  void stop();
  // Logs each running queue's state (BlkQueue::describe) from the serving thread; from any thread.
  void log_state();
  BlkServerStats stats() const;

 private:
  BlkServer(Disk disk, BlkServerOptions options) : disk_(std::move(disk)), options_(std::move(options)) {}
  void serve(UniqueFd connection);
  void turn_away();
  void log(std::string_view line) const;

  DiskLease disk_;
  BlkServerOptions options_;
  UniqueFd listener_;
  UniqueFd stop_;
  UniqueFd dump_;  // log_state()'s wake-up
  const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  std::atomic<std::uint64_t> connections_{0}, turned_away_{0}, refused_messages_{0};
};

}  // namespace rf::vhost_user
