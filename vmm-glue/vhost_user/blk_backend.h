// BlkBackend: the vhost-user-blk back-end's protocol state for one front-end connection: the
// negotiated features, the memory table, and each virtqueue's state from SET_VRING_NUM to
// GET_VRING_BASE. It turns messages into replies and starts and stops the queues
// (virtio/blk_queue.h); it does no socket I/O itself (vhost_user_server.h does), so tests can
// drive it message by message.
//
// Every message is input: its payload size and fd count are checked against what the request
// takes, queue indices against --queues, features against what was offered, ring addresses
// against the memory table. A message that fails a check is refused with a reason, and the
// server closes the connection; the back-end's state then only needs reset().
//
// A queue starts when it has everything (memory table, size, addresses, kick fd: QEMU sends
// SET_VRING_KICK last) and runs until GET_VRING_BASE, which drains it and answers the next
// avail index. It takes requests only while enabled: always without
// VHOST_USER_F_PROTOCOL_FEATURES, after SET_VRING_ENABLE 1 with it. A new memory table stops
// the running queues (drained) and restarts them over the new map where they were.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "disk/disk.h"
#include "vhost_user/disk_lease.h"
#include "mediated/mediator.h"
#include "ring/restriction.h"
#include "passthrough/passthrough_device.h"
#include "vhost_user/front_end_memory.h"
#include "vhost_user/inflight_region.h"
#include "vhost_user/vhost_user_channel.h"
#include "virtio/blk_queue.h"

namespace rf::vhost_user {

inline constexpr unsigned kMaxQueues = 64;

struct BlkBackendConfig {
  unsigned queues = 1;            // 1..kMaxQueues
  RestrictionSet restrictions;    // for every queue's private ring and its validator
  std::string serial;             // GET_ID's answer
  std::chrono::milliseconds drain{5000};  // how long GET_VRING_BASE waits for a queue's requests
  // The device a ringfence-aware guest attaches on a queue (docs/abi.md, "Attaching over
  // virtio-blk"), with the mode's built-in policy; nullopt: attach requests are refused.
  std::optional<virtio::AttachMode> attach_mode = virtio::AttachMode::Mediated;
  // Passthrough attaches only: the rings are served by the kernel's SQPOLL thread pinned to this
  // CPU (the opt-in, unbounded submitter with its watchdog), one thread shared by every ring
  // attached on the connection (IORING_SETUP_ATTACH_WQ). nullopt: each ring's own device thread
  // submits, bounded.
  std::optional<unsigned> sqpoll_cpu;
  // TEST ONLY, mediated attaches: each attached ring's mediator commits this fault once, after
  // `fault_after` honest completions (guest drivers' tests: docs/linux-guest.md).
  CompletionFault attach_fault = CompletionFault::None;
  std::uint64_t fault_after = 0;
};

// DISCARD and WRITE_ZEROES as the back-end offers them: only when the private rings' policy
// allows FALLOCATE, and as far as the disk can zero in place (`can`, Disk::zeroing: never a
// read-only disk). DISCARD needs a device that deallocates by itself; WRITE_ZEROES any writable
// block device.
virtio::BlkZeroing offered_zeroing(const DiskZeroing& can, const RestrictionSet& restrictions);

// A reply's payload and the fd that rides along (borrowed from the back-end: valid until the next
// message), or -1.
struct ReplyPayload {
  ReplyPayload(std::vector<std::byte> payload, int reply_fd = -1) : bytes(std::move(payload)), fd(reply_fd) {}  // NOLINT: implicit from bytes
  std::vector<std::byte> bytes;
  int fd = -1;
};
// What handle() answers: a reply, or nothing to send.
using Reply = std::optional<ReplyPayload>;

class BlkBackend {
 public:
  // `disk` is borrowed: it is acquired when a queue starts (each queue registers its own handle
  // on it) and released when none runs.
  BlkBackend(DiskLease& disk, BlkBackendConfig config);
  ~BlkBackend();
  BlkBackend(const BlkBackend&) = delete;
  BlkBackend& operator=(const BlkBackend&) = delete;

  // The reply for `message` (with REPLY_ACK's ack where the front-end asked for one), or the
  // reason the message is refused; then the connection should be closed.
  Result<Reply, std::string> handle(Message& message);
  // Stops every queue (drained for up to the config's drain time) and forgets the front-end's
  // state: for a connection that ended, and for RESET_OWNER / RESET_DEVICE.
  void reset();

  std::uint64_t offered_features() const { return offered_features_; }
  std::uint64_t offered_protocol_features() const;
  // The configuration space GET_CONFIG reads from.
  const virtio::BlkConfig& config_space() const { return config_space_; }
  unsigned running_queues() const;
  // The running queues' control eventfds: when one is readable, call service_controls() (an
  // attach or detach a guest asked for, done on the caller's thread).
  std::vector<int> control_fds() const;
  void service_controls();
  // The summed counters of every queue that ran on this back-end.
  virtio::BlkQueueCounters counters() const;
  // What queues found in the inflight region when they started since the last call, one line each
  // (requests resubmitted for a back-end that died), for the log.
  std::vector<std::string> take_recovery_notes();
  // A line per running queue (BlkQueue::describe).
  std::vector<std::string> describe_queues() const;
  // Requests each queue took, over every time it ran.
  std::vector<std::uint64_t> requests_per_queue() const;

 private:
  struct Vring {
    std::optional<std::uint32_t> size;
    std::optional<VringAddr> addr;
    std::uint16_t base = 0;
    UniqueFd kick;
    UniqueFd call;
    bool enabled = false;  // SET_VRING_ENABLE (implied without protocol features)
    std::unique_ptr<virtio::BlkQueue> queue;
  };

  Result<Reply, std::string> dispatch(Message& m);
  Result<void, std::string> set_mem_table(Message& m);
  Result<Reply, std::string> get_vring_base(const Message& m);
  Result<void, std::string> set_vring_fd(Message& m);
  Result<Reply, std::string> get_config(const Message& m);
  Result<Reply, std::string> get_inflight_fd(const Message& m);
  Result<Reply, std::string> set_log_base(Message& m);
  Result<void, std::string> set_vring_addr(const Message& m);
  // Live migration: logging is on once LOG_ALL is acked and a log was given (SET_LOG_BASE).
  bool logging() const;
  // Hands every running queue the log as it now stands (or none).
  void apply_logging();
  std::optional<GuestAddress> used_log(const Vring& v) const;
  Result<void, std::string> set_inflight_fd(Message& m);
  Result<void, std::string> start_if_ready(unsigned index);
  Result<std::uint32_t, std::string> queue_index(std::uint64_t index, std::uint32_t request) const;
  // A per-queue message (VringState, VringAddr): no fds, exactly its payload, a queue index below
  // --queues.
  template <typename T>
  struct VringMessage {
    T payload;
    std::uint32_t index;
  };
  template <typename T>
  Result<VringMessage<T>, std::string> vring_message(const Message& m) const;
  std::uint16_t stop_queue(Vring& v);  // returns the next avail position
  void release_disk_if_idle();  // no queue runs: the disk is closed (and unlocked)
  bool protocol_features_acked() const;
  void collect(const virtio::BlkQueue& q);
  virtio::AttachOutcome make_attached_device(const virtio::AttachRequest& request);
  // An attached ring already served by the kernel's SQPOLL thread, to share it with.
  const PassthroughDevice* live_sqpoll_device() const;

  DiskLease& disk_;
  BlkBackendConfig config_;
  std::uint64_t offered_features_ = 0;
  virtio::BlkZeroing zeroing_;  // as offered
  std::uint64_t acked_features_ = 0;
  std::uint64_t acked_protocol_features_ = 0;
  virtio::BlkConfig config_space_{};
  std::optional<FrontEndMemory> memory_;
  std::optional<InflightRegion> inflight_;  // GET_INFLIGHT_FD's or SET_INFLIGHT_FD's, for the queues it has parts for
  std::shared_ptr<DirtyLog> log_;           // SET_LOG_BASE's
  std::vector<Vring> vrings_;
  virtio::BlkQueueCounters finished_;  // counters of queues already stopped
  std::vector<std::uint64_t> finished_requests_;  // per queue, of its runs already stopped
  std::vector<std::string> recovery_notes_;
};

}  // namespace rf::vhost_user
