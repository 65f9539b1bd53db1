#include "vhost_user/blk_server.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "device/eventfd.h"
#include "device/guest_device.h"

namespace rf::vhost_user {

namespace {

Result<sockaddr_un, std::string> socket_address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path) {
    return unexpected(fmt::format("the socket path '{}' must be 1 to {} bytes long", path, sizeof addr.sun_path - 1));
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  return addr;
}

// SAFETY (for the two casts below): sockaddr_un is one of the socket address types the kernel
// reads through the generic sockaddr pointer, with its size passed alongside.
const sockaddr* generic(const sockaddr_un& a) { return reinterpret_cast<const sockaddr*>(&a); }  // SAFETY: see above

// An existing file at `path`: a socket nobody listens on is stale and goes; anything else stays.
Result<void, std::string> clear_stale_socket(const std::string& path, const sockaddr_un& addr) {
  struct stat st{};
  if (::lstat(path.c_str(), &st) != 0) return {};  // nothing there
  if (!S_ISSOCK(st.st_mode)) return unexpected(fmt::format("'{}' exists and is not a socket; choose another --socket path", path));
  UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (probe && ::connect(probe.get(), generic(addr), sizeof addr) == 0) {
    return unexpected(fmt::format("another back-end is listening on '{}'; stop it or choose another --socket path", path));
  }
  if (::unlink(path.c_str()) != 0) return unexpected(fmt::format("removing the stale socket '{}': {}", path, std::strerror(errno)));
  return {};
}

void set_timeouts(int fd, std::chrono::milliseconds timeout) {
  timeval tv{static_cast<time_t>(timeout.count() / 1000), static_cast<suseconds_t>(timeout.count() % 1000 * 1000)};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

}  // namespace

Result<std::unique_ptr<BlkServer>, std::string> BlkServer::listen(Disk disk, BlkServerOptions options) {
  if (options.backend.queues == 0 || options.backend.queues > kMaxQueues) {
    return unexpected(fmt::format("--queues {} is out of range: 1 to {}", options.backend.queues, kMaxQueues));
  }
  auto addr = socket_address(options.socket_path);
  if (!addr) return unexpected(std::move(addr).error());
  RF_TRY_VOID(clear_stale_socket(options.socket_path, *addr));
  std::unique_ptr<BlkServer> server(new BlkServer(std::move(disk), std::move(options)));
  server->listener_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!server->listener_) return unexpected(fmt::format("socket: {}", std::strerror(errno)));
  if (::bind(server->listener_.get(), generic(*addr), sizeof *addr) != 0) {
    const int err = errno;
    server->listener_.reset();  // nothing of ours at the path: the destructor must not unlink someone else's file
    return unexpected(fmt::format("binding '{}': {}", server->options_.socket_path, std::strerror(err)));
  }
  if (::listen(server->listener_.get(), 4) != 0) return unexpected(fmt::format("listen: {}", std::strerror(errno)));
  auto stop = make_eventfd("the server's stop signal");
  if (!stop) return unexpected(stop.error().message);
  server->stop_ = std::move(*stop);
  auto dump = make_eventfd("the server's state-dump signal");
  if (!dump) return unexpected(dump.error().message);
  server->dump_ = std::move(*dump);
  return server;
}

BlkServer::~BlkServer() {
  if (listener_) ::unlink(options_.socket_path.c_str());
}

void BlkServer::log(std::string_view line) const {
  if (options_.log) options_.log(line);
}

BlkServerStats BlkServer::stats() const {
  return BlkServerStats{connections_.load(), turned_away_.load(), refused_messages_.load()};
}

void BlkServer::log_state() { signal_eventfd(dump_.get()); }

void BlkServer::stop() { signal_eventfd(stop_.get()); }

void BlkServer::turn_away() {
  UniqueFd extra(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
  if (!extra) return;
  turned_away_.fetch_add(1);
  log("turned away a second front-end: one connection is served at a time");
}

void BlkServer::run() {
  for (;;) {
    pollfd fds[3] = {{listener_.get(), POLLIN, 0}, {stop_.get(), POLLIN, 0}, {dump_.get(), POLLIN, 0}};
    if (::poll(fds, 3, -1) < 0) continue;  // EINTR
    if ((fds[1].revents & POLLIN) != 0) return;
    if ((fds[2].revents & POLLIN) != 0) {
      drain_eventfd(dump_.get());
      log("no front-end is connected");
    }
    if ((fds[0].revents & POLLIN) == 0) continue;
    UniqueFd connection(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!connection) continue;
    serve(std::move(connection));
    if (::poll(fds + 1, 1, 0) == 1) return;  // stop() while serving
  }
}

void BlkServer::serve(UniqueFd connection) {
  const std::uint64_t number = connections_.fetch_add(1) + 1;
  log(fmt::format("front-end connected (connection {})", number));
  set_timeouts(connection.get(), options_.message_timeout);
  Channel channel(std::move(connection));
  BlkBackend backend(disk_, options_.backend);
  std::string reason;
  // Until the first request completes (for a minute at most), the loop looks every few
  // milliseconds, so that the log can say when (after a restart: how long the guest waited).
  const auto connected = std::chrono::steady_clock::now();
  bool first_completed = false;
  for (;;) {
    std::vector<pollfd> fds = {{channel.fd(), POLLIN, 0}, {listener_.get(), POLLIN, 0}, {stop_.get(), POLLIN, 0},
                               {dump_.get(), POLLIN, 0}};
    for (const int control : backend.control_fds()) fds.push_back({control, POLLIN, 0});
    const bool watching = !first_completed && std::chrono::steady_clock::now() - connected < std::chrono::minutes(1);
    if (::poll(fds.data(), fds.size(), watching ? 5 : -1) < 0) continue;  // EINTR
    if (watching && backend.counters().completed != 0) {
      first_completed = true;
      const auto now = std::chrono::steady_clock::now();
      log(fmt::format("connection {}: first request completed {} ms after the front-end connected, {} ms after the back-end "
                      "began listening", number, std::chrono::duration_cast<std::chrono::milliseconds>(now - connected).count(),
                      std::chrono::duration_cast<std::chrono::milliseconds>(now - started_).count()));
    }
    if ((fds[3].revents & POLLIN) != 0) {
      drain_eventfd(dump_.get());
      const auto lines = backend.describe_queues();
      if (lines.empty()) log(fmt::format("connection {}: no queue is running", number));
      for (const auto& line : lines) log(fmt::format("connection {}: {}", number, line));
    }
    // A guest's attach or detach: the device is made (or stopped) here, off the queue threads.
    for (std::size_t i = 4; i < fds.size(); ++i) {
      if ((fds[i].revents & POLLIN) != 0) {
        backend.service_controls();
        break;
      }
    }
    if ((fds[2].revents & POLLIN) != 0) {
      reason = "the back-end is stopping";
      break;
    }
    if ((fds[0].revents & (POLLIN | POLLHUP | POLLERR)) == 0) {
      // Only while this connection is alive: one that just ended is handled first, so that
      // the front-end waiting behind it (QEMU reconnecting) is served, not turned away.
      if ((fds[1].revents & POLLIN) != 0) turn_away();
      continue;
    }
    auto message = channel.receive();
    if (!message) {
      if (message.error().code != ChannelErrc::Closed) refused_messages_.fetch_add(1);
      reason = message.error().message;
      break;
    }
    auto reply = backend.handle(*message);
    if (!reply) {
      refused_messages_.fetch_add(1);
      reason = fmt::format("refused {}: {}", request_name(message->header.request), reply.error());
      break;
    }
    for (const auto& note : backend.take_recovery_notes()) log(fmt::format("connection {}: {}", number, note));
    if (reply->has_value()) {
      auto sent = channel.reply(message->header.request, (*reply)->bytes, (*reply)->fd);
      if (!sent) {
        reason = sent.error().message;
        break;
      }
    }
  }
  backend.reset();  // stops the queues (drained), unmaps guest memory
  const virtio::BlkQueueCounters c = backend.counters();
  const bool broken = c.broken != BrokenReason::None;
  log(fmt::format("connection {} closed: {} ({} requests, {} completed, {} I/O errors, {} resubmitted, {} pages logged for "
                  "migration; per queue: {}{}{})",
                  number, reason, c.requests, c.completed, c.io_errors, c.resubmitted, c.logged_pages, fmt::join(backend.requests_per_queue(), " "), broken ? "; " : "",
                  broken ? c.broken_detail : ""));
}

}  // namespace rf::vhost_user
