// BlkQueue: one virtio-blk virtqueue served through a private, restricted kernel ring, on its own
// thread. Queues share nothing but the (immutable) guest memory map and the disk: no lock is
// taken between them, and each has its own kernel ring with the disk and guest RAM registered.
//
// Each round the thread
//   1. reaps the private ring's completions and, once every piece of a request is back, writes
//      its status byte and a used entry (id = the head, len = the bytes written into the guest);
//   2. loads the avail index once, checks it is at most `size` ahead of its own position (a jump
//      breaks the queue: it takes nothing more), and takes requests while it has a free slot and
//      room in the private ring's CQ for a request of kMaxPiecesPerRequest pieces: each chain
//      copied once (SplitQueue::read_chain), parsed and validated (parse_blk_request), its
//      pieces submitted under private user_data, or answered at once;
//   3. publishes the used index and signals the call eventfd unless the guest suppressed it
//      (VIRTIO_RING_F_EVENT_IDX's used_event, or VRING_AVAIL_F_NO_INTERRUPT).
// With nothing to do it sets avail_event (EVENT_IDX) to its position, looks once more, and sleeps
// on the kick eventfd and the private ring's completion eventfd.
//
// Bounds, whatever the guest does: at most `size` requests in flight, at most the private CQ's
// entries of kernel I/Os, a fixed-size slot table and scratch space made at create(), and a
// budget of requests per round.
//
// Two records for what outlives the queue: with an inflight part (vhost-user's INFLIGHT_SHMFD,
// inflight_split.h) it marks each head before it can reach the kernel and clears it once its used
// entry is published, and starts by resubmitting what a dead back-end left marked; with a dirty
// log (a live migration, memory/dirty_log.h) it marks every guest page it writes before the guest
// can see the request answered.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <functional>
#include <future>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "device/broken_reason.h"
#include "device/guest_device.h"
#include "device/handoff.h"
#include "device/device_error.h"
#include "device/release_probe.h"
#include "disk/disk.h"
#include "memory/dirty_log.h"
#include "memory/guest_memory_builder.h"
#include "ring/ring.h"
#include "util/unique_fd.h"
#include "util/mmap_region.h"
#include "virtio/blk_request.h"
#include "virtio/inflight_split.h"
#include "virtio/ringfence_attach.h"
#include "virtio/split_queue.h"

namespace rf::virtio {

struct BlkQueueConfig {
  unsigned index = 0;  // for messages
  SplitQueueAddresses addresses;
  std::uint16_t base = 0;  // the first avail position to take (SET_VRING_BASE)
  bool event_idx = false;
  bool indirect = false;
  RestrictionSet restrictions;  // for the private ring and for the validator
  std::string serial;
  BlkZeroing zeroing;  // DISCARD and WRITE_ZEROES, as negotiated (the private ring's policy must allow FALLOCATE)
  std::optional<unsigned> cpu;
  // The thread installs its seccomp filter (restrictions/queue_thread_seccomp.h) before it
  // touches guest memory; off only for tests that look at the queue from inside the process.
  bool seccomp = true;
  // Whether a ringfence-aware guest may attach a shared ring on this queue (ringfence_attach.h);
  // the owner makes the device (service_control).
  bool attach = false;
  // The queue's part of the inflight region (inflight_split.h): `offset` bytes into `region`, for
  // a queue of up to `desc_num` descriptors. With it the queue records what it takes, and when the
  // part holds a record from a back-end that died, starts by resubmitting what that one had in
  // flight (its avail and used positions then come from the record and the used ring, not `base`).
  struct InflightPart {
    std::shared_ptr<MmapRegion> region;
    std::uint64_t offset = 0;
    std::uint16_t desc_num = 0;
  };
  std::optional<InflightPart> inflight;
  // Live migration (memory/dirty_log.h): while set, every guest page the queue writes is marked,
  // and with `used_log` its used ring's pages too, at that guest-physical address (vhost-user's
  // log_guest_addr). set_dirty_log() changes it while the queue runs.
  std::shared_ptr<DirtyLog> dirty_log;
  std::optional<GuestAddress> used_log;
};

// What the owner makes for an ATTACH: the device (created, not started), or no device and the
// reply's errno (and, with ENOSPC, the bytes the window would need).
// How long a DETACH (or the queue's stop) waits for the attached ring's requests.
inline constexpr std::chrono::milliseconds kAttachDrain{5000};

struct AttachOutcome {
  std::unique_ptr<GuestDevice> device;
  AttachReply reply{};
};
using AttachFactory = std::function<AttachOutcome(const AttachRequest&)>;

struct BlkQueueCounters {
  std::uint64_t requests = 0;   // heads taken from the avail ring
  std::uint64_t completed = 0;  // used entries written
  std::uint64_t kernel_ios = 0; // pieces submitted to the private ring
  std::uint64_t io_errors = 0;  // requests that failed in the kernel (short or negative result)
  std::array<std::uint64_t, kBlkRefusalCount> refused{};  // by BlkRefusal
  std::uint64_t notifications = 0;  // call eventfd signals
  std::uint64_t in_flight = 0;
  std::uint64_t resubmitted = 0;  // requests a back-end that died had in flight, taken again
  std::uint64_t logged_pages = 0; // page marks in a live migration's dirty log
  BrokenReason broken = BrokenReason::None;
  std::string broken_detail;
};

// What stop() leaves.
struct BlkQueueStopReport {
  std::uint16_t next_avail = 0;  // GET_VRING_BASE's answer: every request before it has a used entry
  std::uint64_t cancelled = 0;   // requests that did not finish within the drain time (IOERR to the guest)
  bool released = false;         // the kernel freed the private ring: nothing of it can touch guest RAM
};

class BlkQueue {
 public:
  // The queue keeps `memory` alive and registers its fixed-buffer plan; `disk` is registered as
  // fixed file 0. `kick` is the front-end's kick eventfd; `call` may be empty (no notifications
  // until set_call()).
  static Result<std::unique_ptr<BlkQueue>, DeviceError> create(GuestMemoryMap memory, Disk disk, UniqueFd kick,
                                                                UniqueFd call, BlkQueueConfig config);
  ~BlkQueue();  // stop()s with no drain time if the owner did not
  BlkQueue(const BlkQueue&) = delete;
  BlkQueue& operator=(const BlkQueue&) = delete;

  // What the queue found in its inflight part when it was made (nothing without one).
  const InflightRecovery& recovery() const { return recovery_; }
  // Starts the thread and returns once it runs under its seccomp filter (or why it could not).
  Result<void, DeviceError> start();
  // A new call eventfd (the front-end may change it at any time); empty: stop notifying. The
  // thread keeps writing to one descriptor number, which the new eventfd replaces (dup3), so
  // its filter can name it and no lock is shared with the thread.
  void set_call(const UniqueFd& call);
  // A disabled queue takes no new requests but finishes the ones it has (SET_VRING_ENABLE).
  void set_enabled(bool enabled);
  // The dirty log to mark from now on (null: none), and where the used ring is logged. Returns
  // once the queue thread marks only the new one (so that the front-end may read and free the old
  // log), or after a second if the thread does not come round (false).
  bool set_dirty_log(std::shared_ptr<DirtyLog> log, std::optional<GuestAddress> used_log);
  // Takes nothing more, waits up to `drain` for what is in flight, joins the thread and closes the
  // private ring; idempotent (a second call returns the first report).
  BlkQueueStopReport stop(std::chrono::milliseconds drain);
  BlkQueueCounters counters() const;
  // One line for a stalled guest's diagnosis: counters, the queue's own positions and what the
  // guest's avail index and suppression words say now (a snapshot, read from any thread).
  std::string describe() const;

  // The shared-ring attach. The queue thread's filter allows no device creation, so it leaves an
  // ATTACH or DETACH in a mailbox and signals control_fd(); the owner then calls
  // service_control() on its own thread, which makes (or stops) the device and hands the
  // outcome back. The device's doorbell and notification eventfds are put behind two descriptor
  // numbers the queue thread had from the start (dup3): it forwards the guest's virtqueue kicks
  // to the device and turns the device's notifications into used entries of the NOTIFY
  // requests the guest keeps posted (Linux's vring_interrupt ignores an interrupt that brings
  // no used entry).
  int control_fd() const { return control_.get(); }
  void service_control(const AttachFactory& make_device);
  bool attached() const { return attached_.load(std::memory_order_acquire); }
  // The attached device, for the owner's thread only (tests look at its counters).
  const GuestDevice* attached_device() const { return device_.get(); }

 private:
  struct Slot {
    std::uint16_t head = 0;
    std::uint32_t pieces_left = 0;
    bool ok = true;
    ParsedBlkRequest request;
    // The chain's device-writable buffers, for the dirty log when the request ends (its capacity
    // is kept from one request to the next).
    std::vector<ChainSegment> written;
  };
  // The device-writable buffers of the chain in chain_ (what the dirty log marks when it ends),
  // into `out`, whose capacity is kept.
  void copy_written(std::vector<ChainSegment>& out) const;
  // Takes a free slot for the request at `head` whose chain is in chain_.
  std::uint32_t take_slot(std::uint16_t head, std::uint32_t pieces, const ParsedBlkRequest& request);

  BlkQueue(GuestMemoryMap memory, Ring ring, Disk disk, SplitQueue queue, BlkQueueConfig config);
  void run();
  bool round();
  bool reap();
  bool take();
  unsigned take_resubmitted();  // the recovered heads first, as room allows
  bool take_one(std::uint16_t head);
  bool has_room() const;  // a free slot, and private CQ room for a request of the most pieces
  // Hands the private SQ's queued entries to the kernel; false when it could not take them yet
  // (they stay queued) or the ring failed (the queue is then broken).
  bool submit_queued();
  // Writes the status and the used entry; `io_error`: a failed request counts as an I/O error.
  void finish(std::uint32_t slot_index, bool io_error = true);
  void post_used(std::uint16_t head, std::uint32_t len);
  // The dirty log: the device-writable buffers of a chain, the used ring; and taking a new log.
  void mark_written(std::span<const ChainSegment> chain);
  void mark_used_ring();
  void check_dirty_log();
  void publish_and_notify();
  // Whether the guest asks to hear of the used entries from `old` up to the published index.
  bool guest_wants_notification(std::uint16_t old);
  // The late look for interrupts (device/late_look.h): a used entry published while the guest's
  // request to hear of it was not yet visible is signalled a millisecond later.
  void late_notify();
  bool avail_waiting();  // EVENT_IDX: ask for a kick at our position, then look once more
  void sleep();
  void mark_broken(BrokenReason reason, std::string detail);
  void cancel_in_flight();
  // The shared-ring attach, on the queue thread.
  void take_ringfence(std::uint16_t head, std::uint32_t type);
  void answer_ringfence(std::uint16_t head, const RingfenceRequest& r, const AttachReply& reply,
                        std::span<const ChainSegment> written);
  void check_control();
  void deliver_notification();
  void fail_held_notifications();
  void detach_device();  // the owner's thread
  // The owner's thread: the device is let go of without the guest asking (it cannot mark a dirty
  // log); the queue thread then ends the held NOTIFYs, so that the guest attaches again.
  void detach_on_device_side();

  // Declared in reverse teardown order: the thread (last member) is joined before anything it
  // uses goes away; the ring is closed before the memory map it registered can be released.
  GuestMemoryMap memory_;
  std::vector<DiskLimits> limits_;
  Ring ring_;
  Disk disk_;
  SplitQueue queue_;
  BlkQueueConfig config_;
  BlkTarget target_;
  UniqueFd kick_;
  UniqueFd ring_eventfd_;
  UniqueFd stop_;
  std::optional<ReleaseProbe> release_;
  UniqueFd call_;  // a stable number: set_call() puts the front-end's eventfd behind it
  std::atomic<bool> has_call_{false};
  // The shared-ring attach: stable numbers for the device's eventfds (placeholders when none is
  // attached), the owner's wake-up, and the mailbox, the only state both threads touch.
  UniqueFd device_kick_;
  UniqueFd device_notify_;
  UniqueFd control_;
  enum class Control { None, AttachAsked, DetachAsked, Done };
  std::mutex control_mutex_;
  Control control_state_ = Control::None;  // guarded by control_mutex_
  AttachRequest control_request_{};        // guarded
  AttachReply control_reply_{};            // guarded
  std::unique_ptr<GuestDevice> device_;    // the owner's thread only
  std::shared_ptr<DirtyLog> owner_log_;    // the owner's thread only: what a new device is given
  std::atomic<bool> attached_{false};
  // The queue thread's side: the request waiting for the owner, and the NOTIFY requests held.
  std::optional<RingfenceRequest> pending_control_;
  std::uint16_t pending_head_ = 0;
  std::vector<ChainSegment> pending_written_;  // its chain's device-writable buffers
  std::vector<std::uint32_t> held_notify_;  // slots
  bool notify_pending_ = false;

  // The dirty log the thread marks, and where a new one is handed to it.
  struct LogSetting {
    std::shared_ptr<DirtyLog> log;
    std::optional<GuestAddress> used_log;
  };
  std::shared_ptr<DirtyLog> log_;
  std::optional<GuestAddress> used_log_;
  Handoff<LogSetting> log_handoff_;

  // The record of requests in flight, and the heads a dead back-end left in it, to take first.
  std::optional<InflightSplit> inflight_;
  InflightRecovery recovery_;
  std::size_t resubmit_next_ = 0;

  // Private state: never read back from guest memory (but for the used index, once, when a
  // record of requests in flight is recovered).
  std::uint16_t last_avail_ = 0;
  std::uint16_t used_idx_ = 0;
  std::uint16_t published_used_ = 0;
  std::uint16_t signalled_used_ = 0;  // the published index when the guest was last signalled or decided not to be
  std::vector<Slot> slots_;
  std::vector<std::uint32_t> free_slots_;
  std::uint32_t kernel_in_flight_ = 0;  // pieces in the private ring
  std::vector<ChainSegment> chain_;     // scratch, capacity fixed at create()
  std::vector<ValidatedRequest> pieces_;
  std::atomic<bool> enabled_{true};
  std::atomic<bool> stopping_{false};
  std::atomic<std::chrono::milliseconds> drain_{std::chrono::milliseconds(0)};
  std::promise<int> sandboxed_;  // the thread's seccomp result: 0 or -errno
  std::optional<BlkQueueStopReport> stopped_;

  // Mirrors of the thread's private positions, for describe() only.
  std::atomic<std::uint16_t> last_avail_mirror_{0}, used_mirror_{0};
  std::atomic<std::uint64_t> requests_{0}, completed_{0}, kernel_ios_{0}, io_errors_{0}, notifications_{0}, in_flight_{0},
      resubmitted_{0}, logged_pages_{0};
  std::array<std::atomic<std::uint64_t>, kBlkRefusalCount> refused_{};
  BrokenFlag broken_;
  std::thread thread_;
};

}  // namespace rf::virtio
