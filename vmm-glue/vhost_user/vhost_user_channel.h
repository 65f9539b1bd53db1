// One vhost-user connection's transport: whole messages in (header, payload and the fds that
// rode along), replies out. Everything that arrives is input from the front-end and is bounded
// here before anyone parses it: the payload size (kMaxPayload), the fd count (kMaxFds; a message
// with more has its control data truncated by the kernel, and is refused), the version bits, and
// a message cut short by the peer. A refused message's fds are closed with it.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "util/result.h"
#include "util/unique_fd.h"
#include "vhost_user/vhost_user_protocol.h"

namespace rf::vhost_user {

enum class ChannelErrc {
  Closed,     // the front-end closed the connection between messages
  Truncated,  // the connection ended, or a read failed, in the middle of a message
  Malformed,  // bad version bits, an oversized payload, too many fds, a reply flag on a request
  Io,         // recvmsg/sendmsg failed (sys_errno)
};
using ChannelError = Error<ChannelErrc>;

struct Message {
  MessageHeader header{};
  std::vector<std::byte> payload;  // exactly header.size bytes
  std::vector<UniqueFd> fds;
  bool needs_reply() const { return (header.flags & kFlagNeedReply) != 0; }
};

class Channel {
 public:
  explicit Channel(UniqueFd socket) : socket_(std::move(socket)) {}

  // Blocks for the next whole message.
  Result<Message, ChannelError> receive();
  // A reply to `request`: the header with the reply flag, then `payload`, with `fd` riding along
  // unless it is -1.
  Result<void, ChannelError> reply(std::uint32_t request, std::span<const std::byte> payload, int fd = -1);
  int fd() const { return socket_.get(); }

 private:
  UniqueFd socket_;
};

}  // namespace rf::vhost_user
