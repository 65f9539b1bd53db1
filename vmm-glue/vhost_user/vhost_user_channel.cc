#include "vhost_user/vhost_user_channel.h"

#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace rf::vhost_user {

namespace {

ChannelError io_error(const char* what) {
  const int err = errno;
  return ChannelError{ChannelErrc::Io, err, fmt::format("{}: {}", what, std::strerror(err))};
}

ChannelError malformed(std::string message) { return ChannelError{ChannelErrc::Malformed, 0, std::move(message)}; }

// Reads exactly `bytes` more of the message (no fds may ride on them).
Result<void, ChannelError> read_rest(int fd, std::byte* out, std::size_t bytes, std::uint32_t request) {
  std::size_t have = 0;
  while (have < bytes) {
    const ssize_t n = ::recv(fd, out + have, bytes - have, MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return unexpected(ChannelError{ChannelErrc::Truncated, 0,
                                     fmt::format("the front-end sent {} of the {}-byte payload of {} and then nothing within "
                                                 "the message timeout", have, bytes, request_name(request))});
    }
    if (n < 0) return unexpected(io_error("reading a vhost-user payload"));
    if (n == 0) {
      return unexpected(ChannelError{ChannelErrc::Truncated, 0,
                                     fmt::format("the front-end closed the connection {} bytes into the {}-byte payload of {}",
                                                 have, bytes, request_name(request))});
    }
    have += static_cast<std::size_t>(n);
  }
  return {};
}

}  // namespace

Result<Message, ChannelError> Channel::receive() {
  Message m;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
  iovec iov{&m.header, sizeof m.header};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do {
    n = ::recvmsg(socket_.get(), &msg, MSG_CMSG_CLOEXEC | MSG_WAITALL);
  } while (n < 0 && errno == EINTR);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
    return unexpected(ChannelError{ChannelErrc::Truncated, 0, "a message began but its header did not arrive within the message timeout"});
  }
  if (n < 0) return unexpected(io_error("reading a vhost-user message"));
  if (n == 0) return unexpected(ChannelError{ChannelErrc::Closed, 0, "the front-end closed the connection"});
  // Take ownership of every fd that arrived before looking at anything else, so that a refused
  // message closes them.
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      m.fds.emplace_back(fd);
    }
  }
  if ((msg.msg_flags & MSG_CTRUNC) != 0) {
    return unexpected(malformed(fmt::format("a message carried more than {} fds", kMaxFds)));
  }
  if (static_cast<std::size_t>(n) < sizeof m.header) {
    return unexpected(ChannelError{ChannelErrc::Truncated, 0,
                                   fmt::format("only {} bytes of a 12-byte message header arrived (the front-end closed "
                                               "the connection or stopped sending)", n)});
  }
  const MessageHeader& h = m.header;
  if ((h.flags & kVersionMask) != kVersion) {
    return unexpected(malformed(fmt::format("{} has version bits {} (this back-end speaks version 1)", request_name(h.request),
                                            h.flags & kVersionMask)));
  }
  if ((h.flags & kFlagReply) != 0) return unexpected(malformed(fmt::format("{} arrived with the reply flag set", request_name(h.request))));
  if (h.size > kMaxPayload) {
    return unexpected(malformed(fmt::format("{} declares a {}-byte payload; no request takes more than {}",
                                            request_name(h.request), h.size, kMaxPayload)));
  }
  m.payload.resize(h.size);
  RF_TRY_VOID(read_rest(socket_.get(), m.payload.data(), h.size, h.request));
  return m;
}

Result<void, ChannelError> Channel::reply(std::uint32_t request, std::span<const std::byte> payload, int fd) {
  MessageHeader h{request, kVersion | kFlagReply, static_cast<std::uint32_t>(payload.size())};
  iovec iov[2] = {{&h, sizeof h}, {const_cast<std::byte*>(payload.data()), payload.size()}};
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = payload.empty() ? 1 : 2;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  if (fd >= 0) {
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
  }
  const std::size_t total = sizeof h + payload.size();
  ssize_t n;
  do {
    n = ::sendmsg(socket_.get(), &msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return unexpected(io_error(fmt::format("replying to {}", request_name(request)).c_str()));
  if (static_cast<std::size_t>(n) != total) {
    return unexpected(ChannelError{ChannelErrc::Truncated, 0, fmt::format("a reply to {} was cut short", request_name(request))});
  }
  return {};
}

}  // namespace rf::vhost_user
