// A vhost-user front-end for tests: guest RAM in a sealed memfd it maps itself (two regions with
// a hole, like QEMU's x86 machines), raw message I/O so that tests can send anything (a short
// payload, the wrong fd count, an unknown request), and the steps QEMU's vhost-user-blk takes,
// in QEMU's order, for the well-behaved path.
#pragma once

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/dirty_bits.h"
#include "support/virtio_driver.h"
#include "util/unique_fd.h"
#include "vhost_user/vhost_user_protocol.h"
#include "virtio/virtio_spec.h"

namespace rf::test {

// Guest RAM: [0, 1 MiB) and [2 MiB, 4 MiB), one memfd, the front-end's own mapping.
class FrontEndRam {
 public:
  static constexpr std::uint64_t kLow = 1 << 20, kHighBase = 2 << 20, kHigh = 2 << 20;

  explicit FrontEndRam(bool seal = true) {
    fd_.reset(::memfd_create("front-end-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING));
    if (!fd_ || ::ftruncate(fd_.get(), kLow + kHigh) != 0) throw std::runtime_error("memfd");
    if (seal && ::fcntl(fd_.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) != 0) throw std::runtime_error("seals");
    void* p = ::mmap(nullptr, kLow + kHigh, PROT_READ | PROT_WRITE, MAP_SHARED, fd_.get(), 0);
    if (p == MAP_FAILED) throw std::runtime_error("mmap");
    host_ = static_cast<std::byte*>(p);
  }
  ~FrontEndRam() { ::munmap(host_, kLow + kHigh); }
  FrontEndRam(const FrontEndRam&) = delete;
  FrontEndRam& operator=(const FrontEndRam&) = delete;

  int fd() const { return fd_.get(); }
  std::uint64_t user_addr(std::uint64_t gpa) const {
    const std::uint64_t base = reinterpret_cast<std::uint64_t>(host_);  // SAFETY: an address, only compared and added to
    return gpa < kLow ? base + gpa : base + kLow + (gpa - kHighBase);
  }
  GuestView view() const { return GuestView{{{0, kLow, host_}, {kHighBase, kHigh, host_ + kLow}}}; }
  // The two regions as SET_MEM_TABLE lists them.
  std::vector<vhost_user::MemoryRegion> regions() const {
    return {{0, kLow, user_addr(0), 0}, {kHighBase, kHigh, user_addr(kHighBase), kLow}};
  }

 private:
  UniqueFd fd_;
  std::byte* host_ = nullptr;
};

// A dirty log as QEMU makes one for a live migration: a sealed memfd both sides map, one bit per
// 4 KiB guest page (4096 bytes: FrontEndRam's 4 MiB and far more), handed over with SET_LOG_BASE.
class FrontEndLog {
 public:
  static constexpr std::uint64_t kBytes = 4096;

  FrontEndLog() {
    fd_.reset(::memfd_create("front-end-log", MFD_CLOEXEC | MFD_ALLOW_SEALING));
    if (!fd_ || ::ftruncate(fd_.get(), kBytes) != 0) throw std::runtime_error("memfd");
    if (::fcntl(fd_.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) != 0) throw std::runtime_error("seals");
    void* p = ::mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd_.get(), 0);
    if (p == MAP_FAILED) throw std::runtime_error("mmap");
    bits_ = static_cast<std::byte*>(p);
  }
  ~FrontEndLog() { ::munmap(bits_, kBytes); }
  FrontEndLog(const FrontEndLog&) = delete;
  FrontEndLog& operator=(const FrontEndLog&) = delete;

  int fd() const { return fd_.get(); }
  bool dirty(std::uint64_t gpa) const { return page_marked({bits_, kBytes}, gpa); }
  void clear() const { std::memset(bits_, 0, kBytes); }

 private:
  UniqueFd fd_;
  std::byte* bits_ = nullptr;
};

struct Reply {
  vhost_user::MessageHeader header{};
  std::vector<std::byte> payload;
  UniqueFd fd;  // the one that rode along, if any
};

class FrontEnd {
 public:
  static std::optional<FrontEnd> connect(const std::string& path) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    // SAFETY: sockaddr_un is read through the generic pointer with its size alongside.
    if (!fd || ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) return std::nullopt;
    timeval tv{10, 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return FrontEnd(std::move(fd));
  }

  // Sends a raw message: `header_size` overrides the size field, `flags` the flags.
  bool send(std::uint32_t request, std::span<const std::byte> payload, std::span<const int> fds = {},
            std::optional<std::uint32_t> header_size = std::nullopt,
            std::uint32_t flags = vhost_user::kVersion) {
    vhost_user::MessageHeader h{request, flags, header_size.value_or(static_cast<std::uint32_t>(payload.size()))};
    std::vector<std::byte> bytes(sizeof h + payload.size());
    std::memcpy(bytes.data(), &h, sizeof h);
    if (!payload.empty()) std::memcpy(bytes.data() + sizeof h, payload.data(), payload.size());
    iovec iov{bytes.data(), bytes.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    std::vector<char> control(CMSG_SPACE(sizeof(int) * fds.size()));
    if (!fds.empty()) {
      msg.msg_control = control.data();
      msg.msg_controllen = control.size();
      cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
      std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    }
    return ::sendmsg(fd_.get(), &msg, MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size());
  }
  template <typename T>
  bool send_value(std::uint32_t request, const T& value, std::span<const int> fds = {}, std::uint32_t flags = vhost_user::kVersion) {
    std::byte bytes[sizeof(T)];
    std::memcpy(bytes, &value, sizeof value);
    return send(request, bytes, fds, std::nullopt, flags);
  }
  bool send_empty(std::uint32_t request) { return send(request, {}); }

  std::optional<Reply> receive() {
    Reply r;
    // The header comes with whatever fd rides along (GET_INFLIGHT_FD's region).
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
    iovec iov{&r.header, sizeof r.header};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n;
    do {
      n = ::recvmsg(fd_.get(), &msg, MSG_CMSG_CLOEXEC | MSG_WAITALL);
    } while (n < 0 && errno == EINTR);
    if (n != static_cast<ssize_t>(sizeof r.header)) return std::nullopt;
    if (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr && c->cmsg_type == SCM_RIGHTS) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c), sizeof fd);
      r.fd.reset(fd);
    }
    r.payload.resize(r.header.size);
    if (r.header.size != 0 && !read_all(r.payload.data(), r.header.size)) return std::nullopt;
    return r;
  }
  std::optional<std::uint64_t> receive_u64() {
    auto r = receive();
    if (!r || r->payload.size() != 8) return std::nullopt;
    std::uint64_t v;
    std::memcpy(&v, r->payload.data(), 8);
    return v;
  }
  // True once the back-end has closed the connection (a read returns end-of-file, or the
  // connection was reset because the back-end closed it with bytes unread).
  bool closed_by_peer() {
    char byte;
    for (;;) {
      const ssize_t n = ::recv(fd_.get(), &byte, 1, 0);
      if (n < 0 && errno == EINTR) continue;
      return n == 0 || (n < 0 && errno == ECONNRESET);
    }
  }

  // QEMU's steps up to a running queue, for `queues` queues over `ram`. Returns false (with
  // `error`) on the first step that fails.
  bool handshake(std::uint64_t* features_out = nullptr, std::uint64_t* acked_out = nullptr) {
    if (!send_empty(vhost_user::kGetFeatures)) return false;
    auto features = receive_u64();
    if (!features) return false;
    if (!send_empty(vhost_user::kGetProtocolFeatures)) return false;
    auto protocol = receive_u64();
    if (!protocol) return false;
    if (!send_value(vhost_user::kSetProtocolFeatures, *protocol)) return false;
    if (!send_empty(vhost_user::kGetQueueNum)) return false;
    if (!receive_u64()) return false;
    if (!send_empty(vhost_user::kSetOwner)) return false;
    const std::uint64_t acked = *features & (virtio::feature_bit(virtio::kFeatureVersion1) |
                                             virtio::feature_bit(virtio::kFeatureIndirectDesc) |
                                             virtio::feature_bit(virtio::kFeatureEventIdx) |
                                             virtio::feature_bit(vhost_user::kFeatureProtocolFeatures) |
                                             virtio::feature_bit(virtio::kBlkFeatureFlush));
    if (!send_value(vhost_user::kSetFeatures, acked)) return false;
    if (features_out != nullptr) *features_out = *features;
    if (acked_out != nullptr) *acked_out = acked;
    return true;
  }
  bool set_mem_table(const FrontEndRam& ram, std::uint32_t flags = vhost_user::kVersion) {
    const auto regions = ram.regions();
    std::vector<std::byte> payload(8 + 32 * regions.size());
    const std::uint32_t count = static_cast<std::uint32_t>(regions.size());
    std::memcpy(payload.data(), &count, 4);
    std::memcpy(payload.data() + 8, regions.data(), 32 * regions.size());
    const int fds[] = {ram.fd(), ram.fd()};
    return send(vhost_user::kSetMemTable, payload, fds, std::nullopt, flags);
  }
  // SET_VRING_NUM, BASE, ADDR, KICK, CALL, ENABLE for queue `index` laid out by `vq`.
  bool start_queue(std::uint32_t index, const TestVirtqueue& vq, const FrontEndRam& ram, int kick, int call) {
    if (!send_value(vhost_user::kSetVringNum, vhost_user::VringState{index, vq.size()})) return false;
    if (!send_value(vhost_user::kSetVringBase, vhost_user::VringState{index, 0})) return false;
    const vhost_user::VringAddr addr{index, 0, ram.user_addr(vq.desc_gpa()), ram.user_addr(vq.used_gpa()),
                                     ram.user_addr(vq.avail_gpa()), 0};
    if (!send_value(vhost_user::kSetVringAddr, addr)) return false;
    const int kick_fd[] = {kick};
    if (!send_value(vhost_user::kSetVringKick, std::uint64_t{index}, kick_fd)) return false;
    const int call_fd[] = {call};
    if (!send_value(vhost_user::kSetVringCall, std::uint64_t{index}, call_fd)) return false;
    return send_value(vhost_user::kSetVringEnable, vhost_user::VringState{index, 1});
  }
  int fd() const { return fd_.get(); }

 private:
  explicit FrontEnd(UniqueFd fd) : fd_(std::move(fd)) {}
  bool read_all(void* out, std::size_t bytes) {
    auto* p = static_cast<char*>(out);
    std::size_t have = 0;
    while (have < bytes) {
      const ssize_t n = ::recv(fd_.get(), p + have, bytes - have, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      have += static_cast<std::size_t>(n);
    }
    return true;
  }
  UniqueFd fd_;
};

}  // namespace rf::test
