#include "virtio/blk_queue.h"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <utility>

#include <fmt/format.h>

#include "device/device_thread.h"
#include "device/eventfd.h"
#include "device/guest_device.h"
#include "device/late_look.h"
#include "restrictions/queue_thread_seccomp.h"

namespace rf::virtio {

namespace {

// The private ring: room for every slot's request at one piece each and for one request of the
// most pieces besides, so that a big request only waits for room, never forever.
constexpr unsigned kPrivateSqEntries = 512;
constexpr unsigned kPrivateCqEntries = 2 * kPrivateSqEntries;
static_assert(kMaxPiecesPerRequest <= kPrivateCqEntries);
constexpr unsigned kRequestsPerRound = 256;

// A request's status byte, in guest RAM the guest may be reading at the same time.
void write_status(std::byte* status, std::uint8_t value) {
  // SAFETY: every status pointer comes from parse_blk_request or parse_ringfence_request, which
  // translated it as one writable byte of the queue's guest memory map; the queue keeps the map
  // alive.
  std::atomic_ref<unsigned char>(*reinterpret_cast<unsigned char*>(status)).store(value, std::memory_order_relaxed);
}

// Kernel user_data: the slot in the low half, the piece's expected result in the high half.
constexpr std::uint64_t piece_user_data(std::uint32_t slot, std::int32_t expected) {
  return (std::uint64_t{static_cast<std::uint32_t>(expected)} << 32) | slot;
}

}  // namespace

Result<std::unique_ptr<BlkQueue>, DeviceError> BlkQueue::create(GuestMemoryMap memory, Disk disk, UniqueFd kick,
                                                                 UniqueFd call, BlkQueueConfig config) {
  if (!memory) return unexpected(config_error("no guest memory"));
  if (!kick) return unexpected(config_error(fmt::format("queue {} has no kick eventfd", config.index)));
  if (config.cpu) RF_TRY_VOID(check_device_cpu(*config.cpu));
  auto queue = SplitQueue::create(*memory, config.addresses, config.indirect);
  if (!queue) {
    return unexpected(config_error(fmt::format("queue {}: {} ({:#x})", config.index, queue_errc_text(queue.error().code),
                                               queue.error().value)));
  }
  RingOptions options;
  options.sq_entries = kPrivateSqEntries;
  options.cq_entries = kPrivateCqEntries;
  auto ring_eventfd = make_eventfd("the private ring's completions");
  if (!ring_eventfd) return unexpected(std::move(ring_eventfd).error());
  auto stop = make_eventfd("the queue's stop signal");
  if (!stop) return unexpected(std::move(stop).error());
  auto release = ReleaseProbe::create();
  if (!release) return unexpected(std::move(release).error());
  std::vector<Disk> disks;
  disks.push_back(std::move(disk));
  DeviceSetupTimes times;
  auto ring = build_device_ring(options, disks, *memory, ring_eventfd->get(), config.restrictions, times,
                                release->registered_fd());
  if (!ring) return unexpected(std::move(ring).error());
  release->forget_registered();  // the ring holds it now

  // The call eventfd's stable number: the front-end's, or a placeholder until it sends one.
  auto stable_call = make_eventfd("the call eventfd's placeholder");
  if (!stable_call) return unexpected(std::move(stable_call).error());
  auto device_kick = make_eventfd("the attached device's doorbell placeholder");
  auto device_notify = make_eventfd("the attached device's notification placeholder");
  auto control = make_eventfd("the queue's control signal");
  if (!device_kick) return unexpected(std::move(device_kick).error());
  if (!device_notify) return unexpected(std::move(device_notify).error());
  if (!control) return unexpected(std::move(control).error());
  std::unique_ptr<BlkQueue> q(new BlkQueue(std::move(memory), std::move(*ring), std::move(disks[0]), *queue, std::move(config)));
  q->kick_ = std::move(kick);
  q->call_ = std::move(*stable_call);
  q->set_call(call);
  q->device_kick_ = std::move(*device_kick);
  q->device_notify_ = std::move(*device_notify);
  q->control_ = std::move(*control);
  q->ring_eventfd_ = std::move(*ring_eventfd);
  q->stop_ = std::move(*stop);
  q->release_ = std::move(*release);
  return q;
}

BlkQueue::BlkQueue(GuestMemoryMap memory, Ring ring, Disk disk, SplitQueue queue, BlkQueueConfig config)
    : memory_(std::move(memory)), ring_(std::move(ring)), disk_(std::move(disk)), queue_(queue), config_(std::move(config)) {
  limits_.push_back(DiskLimits{disk_.size_bytes(), disk_.logical_block_size(), disk_.read_only()});
  const bool zeroes = config_.zeroing.discard || config_.zeroing.write_zeroes;
  target_.validation = ValidationContext{&ring_.restrictions(), limits_, memory_.get(), kDeviceMaxTransfer,
                                         zeroes ? kMaxZeroingBytes : 0};
  target_.serial = config_.serial;
  target_.zeroing = config_.zeroing;
  last_avail_ = config_.base;
  // Every request taken before the base was finished (GET_VRING_BASE drains), so the used index
  // continues from it.
  used_idx_ = config_.base;
  if (config_.inflight) {
    // SAFETY: the owner checked that the part lies inside the region (offset + the part's bytes
    // for desc_num), which the config's shared_ptr keeps mapped as long as the queue lives.
    inflight_.emplace(config_.inflight->region->bytes() + config_.inflight->offset, config_.inflight->desc_num);
    // GUEST-CONTROLLED: the used index, read once; see inflight_split.h for what a lie can do.
    recovery_ = inflight_->recover(queue_.load_used_idx(), queue_.size());
    if (!recovery_.fresh) {
      last_avail_ = recovery_.next_avail;
      used_idx_ = recovery_.used_idx;
    }
  }
  published_used_ = used_idx_;
  signalled_used_ = used_idx_;
  log_ = config_.dirty_log;
  used_log_ = config_.used_log;
  slots_.resize(queue_.size());
  free_slots_.reserve(queue_.size());
  for (std::uint32_t i = queue_.size(); i > 0; --i) free_slots_.push_back(i - 1);
  chain_.reserve(queue_.size());
  pieces_.reserve(kMaxPiecesPerRequest);
}

BlkQueue::~BlkQueue() { stop(std::chrono::milliseconds(0)); }

Result<void, DeviceError> BlkQueue::start() {
  if (thread_.joinable() || stopped_) return unexpected(DeviceError{DeviceErrc::WrongState, 0, "the queue was started already"});
  std::future<int> sandboxed = sandboxed_.get_future();
  auto thread = start_device_thread([this] { run(); }, config_.cpu, "a virtio queue thread");
  if (!thread) return unexpected(std::move(thread).error());
  thread_ = std::move(*thread);
  const int rc = sandboxed.get();
  if (rc != 0) {
    thread_.join();  // it ended without touching guest memory
    stopped_ = BlkQueueStopReport{last_avail_, 0, false};
    return unexpected(DeviceError{DeviceErrc::System, -rc,
                                  fmt::format("queue {}: installing the queue thread's seccomp filter: {}", config_.index,
                                              std::strerror(-rc))});
  }
  return {};
}

void BlkQueue::set_call(const UniqueFd& call) {
  if (!call) {
    has_call_.store(false, std::memory_order_release);
    return;
  }
  // SAFETY: dup3 atomically makes call_'s number refer to the new eventfd; a write the thread
  // makes at the same moment reaches the old one or the new one, both of which the guest's
  // front-end handed over for this queue.
  if (::dup3(call.get(), call_.get(), O_CLOEXEC) < 0) {
    has_call_.store(false, std::memory_order_release);
    return;
  }
  has_call_.store(true, std::memory_order_release);
}

void BlkQueue::set_enabled(bool enabled) {
  enabled_.store(enabled, std::memory_order_release);
  signal_eventfd(stop_.get());  // wake the thread to look
}

bool BlkQueue::set_dirty_log(std::shared_ptr<DirtyLog> log, std::optional<GuestAddress> used_log) {
  // An attached device marks its own writes, or cannot (a passthrough ring: the kernel writes
  // guest RAM with nobody looking), and then it is let go of: the guest attaches again, and the
  // owner makes a device that can (blk_backend.h).
  owner_log_ = log;
  if (device_ && !device_->set_dirty_log(log)) detach_on_device_side();
  if (!thread_.joinable()) {  // not started, or stopped: nothing marks concurrently
    log_ = std::move(log);
    used_log_ = used_log;
    return true;
  }
  return log_handoff_.give(LogSetting{std::move(log), used_log}, [this] { signal_eventfd(stop_.get()); },
                           std::chrono::seconds(1));
}

// On the queue thread, between requests: no mark is half made with the old log.
void BlkQueue::check_dirty_log() {
  if (auto setting = log_handoff_.take()) {
    log_ = std::move(setting->log);
    used_log_ = setting->used_log;
  }
}

void BlkQueue::mark_written(std::span<const ChainSegment> chain) {
  if (!log_) return;
  std::uint64_t pages = 0;
  for (const ChainSegment& c : chain) {
    if (c.device_writes) pages += log_->mark(c.gpa, c.len);
  }
  logged_pages_.fetch_add(pages, std::memory_order_relaxed);
}

void BlkQueue::mark_used_ring() {
  if (log_ && used_log_) {
    logged_pages_.fetch_add(log_->mark(*used_log_, used_ring_bytes(queue_.size())), std::memory_order_relaxed);
  }
}

void BlkQueue::mark_broken(BrokenReason reason, std::string detail) {
  broken_.mark(reason, fmt::format("queue {}: {}", config_.index, detail));
}

void BlkQueue::run() {
  const int sandboxed =
      config_.seccomp ? policy::install_queue_thread_seccomp({ring_.fd(), kick_.get(), ring_eventfd_.get(), stop_.get(), call_.get(),
                                                              device_kick_.get(), device_notify_.get(), control_.get()})
                      : 0;
  sandboxed_.set_value(sandboxed);
  if (sandboxed != 0) return;
  while (!stopping_.load(std::memory_order_acquire)) {
    if (!round()) sleep();
  }
  // Drain: take nothing more, reap until the private ring holds nothing of ours or the drain
  // time stop() gave is up (stop() then closes the ring and fails the rest).
  const auto deadline = std::chrono::steady_clock::now() + drain_.load(std::memory_order_acquire);
  while (kernel_in_flight_ != 0 && !broken_.is_set() && std::chrono::steady_clock::now() < deadline) {
    submit_queued();  // what the kernel could not take before
    if (!reap()) {
      pollfd fd{ring_eventfd_.get(), POLLIN, 0};
      // SAFETY: one pollfd on the ring's completion eventfd, which the queue owns.
      if (::poll(&fd, 1, 10) == 1) drain_eventfd(fd.fd);
    }
    publish_and_notify();
  }
  publish_and_notify();
}

bool BlkQueue::round() {
  check_dirty_log();
  check_control();
  bool work = reap();
  if (enabled_.load(std::memory_order_acquire) && !broken_.is_set()) work = take() || work;
  publish_and_notify();
  return work;
}

bool BlkQueue::reap() {
  bool any = false;
  while (auto cqe = ring_.pop_completion()) {
    any = true;
    const auto slot = static_cast<std::uint32_t>(cqe->user_data);
    const auto expected = static_cast<std::int32_t>(cqe->user_data >> 32);
    if (slot >= slots_.size() || slots_[slot].pieces_left == 0 || kernel_in_flight_ == 0) {
      mark_broken(BrokenReason::KernelRing, fmt::format("a completion for no request (user_data {:#x})", cqe->user_data));
      return any;
    }
    --kernel_in_flight_;
    Slot& s = slots_[slot];
    if (cqe->res != expected) s.ok = false;
    if (--s.pieces_left == 0) finish(slot);
  }
  return any;
}

bool BlkQueue::has_room() const {
  return !free_slots_.empty() && kernel_in_flight_ + kMaxPiecesPerRequest <= kPrivateCqEntries;
}

bool BlkQueue::submit_queued() {
  // Pushed or published, and not consumed by the kernel yet.
  if (ring_.sq().space_left() == ring_.sq().entries()) return true;
  auto sent = ring_.submit();
  if (sent) return true;
  // The kernel could not take them now (no memory for requests, a signal): they stay in the SQ
  // and go with the next round. Anything else is a broken private ring.
  const int err = sent.error().sys_errno;
  if (err == EAGAIN || err == EBUSY || err == EINTR || err == ENOMEM) return false;
  mark_broken(BrokenReason::KernelRing, fmt::format("submitting to the private ring: {}", sent.error().message));
  return false;
}

bool BlkQueue::take() {
  const std::uint16_t avail = queue_.load_avail_idx();  // GUEST-CONTROLLED: checked below
  const auto waiting = static_cast<std::uint16_t>(avail - last_avail_);
  if (waiting > queue_.size()) {
    mark_broken(BrokenReason::Virtqueue, fmt::format("the avail index jumped to {} from {} (queue size {})", avail,
                                                     last_avail_, queue_.size()));
    return false;
  }
  unsigned taken = take_resubmitted();
  if (resubmit_next_ < recovery_.resubmit.size()) {  // no room for the rest yet
    submit_queued();
    return taken != 0;
  }
  while (last_avail_ != avail && taken < kRequestsPerRound && has_room()) {
    const std::uint16_t head = queue_.load_avail_entry(last_avail_);  // GUEST-CONTROLLED: read_chain checks it
    if (!take_one(head)) break;
    ++last_avail_;
    ++taken;
  }
  submit_queued();
  return taken != 0;
}

// The requests a back-end that died had taken and not answered: their chains are read and
// validated again like any other (the guest has not been told they finished, so it has not reused
// their descriptors), and their used entries continue the used ring from its index.
unsigned BlkQueue::take_resubmitted() {
  unsigned taken = 0;
  while (resubmit_next_ < recovery_.resubmit.size() && taken < kRequestsPerRound && has_room()) {
    if (!take_one(recovery_.resubmit[resubmit_next_])) break;
    ++resubmit_next_;
    ++taken;
    resubmitted_.fetch_add(1, std::memory_order_relaxed);
  }
  return taken;
}

// GUEST-CONTROLLED: the chain at `head` and everything it names; validated by read_chain and
// parse_blk_request. False when the queue broke (nothing taken).
bool BlkQueue::take_one(std::uint16_t head) {
  auto chain = queue_.read_chain(head, chain_);
  if (!chain) {
    mark_broken(BrokenReason::Virtqueue, fmt::format("the chain at head {}: {} ({:#x})", head,
                                                     queue_errc_text(chain.error().code), chain.error().value));
    return false;
  }
  // Recorded before anything of it can reach the kernel: a back-end that dies from here on leaves
  // it for the next one to resubmit.
  if (inflight_) inflight_->taken(head);
  requests_.fetch_add(1, std::memory_order_relaxed);
  ParsedBlkRequest request = parse_blk_request(chain_, target_, pieces_);
  // The ringfence vendor types are not virtio-blk's: the parser calls them unsupported, and an
  // attach-enabled queue takes them from there (its header was read once, by the parser).
  if (config_.attach && request.refusal == BlkRefusal::Unsupported && is_ringfence_request(request.type)) {
    take_ringfence(head, request.type);
    return true;
  }
  if (request.refusal != BlkRefusal::None) {
    refused_[static_cast<std::size_t>(request.refusal)].fetch_add(1, std::memory_order_relaxed);
  }
  if (pieces_.empty()) {  // answered at once
    if (request.status != nullptr) {
      write_status(request.status, request.status_value);
    }
    mark_written(chain_);
    post_used(head, blk_used_len(request, request.status_value == kBlkStatusOk));
    return true;
  }
  const std::uint32_t slot = take_slot(head, static_cast<std::uint32_t>(pieces_.size()), request);
  in_flight_.fetch_add(1, std::memory_order_relaxed);
  for (const ValidatedRequest& piece : pieces_) {
    const Sqe sqe = kernel_sqe(piece).with_user_data(piece_user_data(slot, full_result(piece)));
    while (!ring_.try_push(sqe)) {
      // The SQ is full: hand what is queued to the kernel, which takes it at once (no SQPOLL).
      // If it cannot right now, wait for a completion to free what it needs.
      if (!submit_queued()) {
        if (broken_.is_set()) return true;  // the slot stays taken; stop() cancels it
        pollfd fd{ring_eventfd_.get(), POLLIN, 0};
        // SAFETY: one pollfd on the ring's completion eventfd, which the queue owns.
        ::poll(&fd, 1, 1);
      }
    }
    ++kernel_in_flight_;
  }
  kernel_ios_.fetch_add(pieces_.size(), std::memory_order_relaxed);
  return true;
}

std::uint32_t BlkQueue::take_slot(std::uint16_t head, std::uint32_t pieces, const ParsedBlkRequest& request) {
  const std::uint32_t slot = free_slots_.back();
  free_slots_.pop_back();
  Slot& s = slots_[slot];
  s.head = head;
  s.pieces_left = pieces;
  s.ok = true;
  s.request = request;
  copy_written(s.written);
  return slot;
}

void BlkQueue::copy_written(std::vector<ChainSegment>& out) const {
  out.clear();
  for (const ChainSegment& c : chain_) {
    if (c.device_writes) out.push_back(c);
  }
}

void BlkQueue::finish(std::uint32_t slot_index, bool io_error) {
  Slot& s = slots_[slot_index];
  if (!s.ok && io_error) io_errors_.fetch_add(1, std::memory_order_relaxed);
  write_status(s.request.status, s.ok ? kBlkStatusOk : kBlkStatusIoErr);
  mark_written(s.written);  // the kernel's writes are done (its CQE came), the status just written
  post_used(s.head, blk_used_len(s.request, s.ok));
  free_slots_.push_back(slot_index);
  in_flight_.fetch_sub(1, std::memory_order_relaxed);
}

void BlkQueue::post_used(std::uint16_t head, std::uint32_t len) {
  queue_.write_used(used_idx_, head, len);
  if (inflight_) inflight_->used(head);
  ++used_idx_;
  completed_.fetch_add(1, std::memory_order_relaxed);
}

void BlkQueue::publish_and_notify() {
  last_avail_mirror_.store(last_avail_, std::memory_order_relaxed);
  if (used_idx_ == published_used_) return;
  used_mirror_.store(used_idx_, std::memory_order_relaxed);
  const std::uint16_t old = published_used_;
  queue_.publish_used_idx(used_idx_);
  mark_used_ring();
  published_used_ = used_idx_;
  if (inflight_) inflight_->published(published_used_);  // only now are the answered heads no longer in flight
  // The used index must be visible before the guest's suppression word is read (and the guest
  // does the mirror image), or both could decide the other will act.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (!guest_wants_notification(old) || !has_call_.load(std::memory_order_acquire)) return;
  signal_eventfd(call_.get());
  signalled_used_ = published_used_;
  notifications_.fetch_add(1, std::memory_order_relaxed);
}

bool BlkQueue::guest_wants_notification(std::uint16_t old) {
  if (config_.event_idx) {
    // GUEST-CONTROLLED: used_event only decides whether to notify.
    const std::uint16_t event = queue_.load_used_event();
    return static_cast<std::uint16_t>(published_used_ - event - 1) < static_cast<std::uint16_t>(published_used_ - old);
  }
  return (queue_.load_avail_flags() & kAvailNoInterrupt) == 0;
}

void BlkQueue::late_notify() {
  if (signalled_used_ == published_used_) return;
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (guest_wants_notification(signalled_used_) && has_call_.load(std::memory_order_acquire)) {
    signal_eventfd(call_.get());
    notifications_.fetch_add(1, std::memory_order_relaxed);
  }
  signalled_used_ = published_used_;  // decided: the guest's word is long visible by now
}

bool BlkQueue::avail_waiting() {
  if (!enabled_.load(std::memory_order_acquire) || broken_.is_set()) return false;
  if (config_.event_idx) {
    queue_.store_avail_event(last_avail_);
    mark_used_ring();  // avail_event lives in the used ring
  }
  std::atomic_thread_fence(std::memory_order_seq_cst);
  return queue_.load_avail_idx() != last_avail_;
}

void BlkQueue::sleep() {
  // Requests waiting and room to take them: no sleep. Waiting without room (every slot or the
  // private CQ in use): sleep until a completion frees some, like any other wake-up.
  if (avail_waiting() && has_room()) return;
  // SQEs the kernel could not take yet: look again within a millisecond.
  const bool kernel_waiting = ring_.sq().space_left() != ring_.sq().entries();
  pollfd fds[4] = {{kick_.get(), POLLIN, 0}, {ring_eventfd_.get(), POLLIN, 0}, {stop_.get(), POLLIN, 0},
                   {device_notify_.get(), POLLIN, 0}};
  // SAFETY: four pollfds on descriptors the queue owns for as long as the thread runs.
  int n = ::poll(fds, 4, kernel_waiting ? 1 : kLateLookMs);
  // The late looks (device/late_look.h): an interrupt the guest asked for after we looked, and
  // an avail index published without the kick it needed.
  if (n == 0) late_notify();
  if (n == 0 && !kernel_waiting && !avail_waiting()) n = ::poll(fds, 4, -1);
  if (n <= 0) return;  // EINTR: look again
  for (const pollfd& p : fds) {
    if ((p.revents & POLLIN) != 0) drain_eventfd(p.fd);
  }
  // With a ring attached, a kick of the virtqueue is the ring's doorbell too.
  if ((fds[0].revents & POLLIN) != 0 && attached_.load(std::memory_order_acquire)) signal_eventfd(device_kick_.get());
  if ((fds[3].revents & POLLIN) != 0) deliver_notification();
}

void BlkQueue::answer_ringfence(std::uint16_t head, const RingfenceRequest& r, const AttachReply& reply,
                                std::span<const ChainSegment> written) {
  if (r.reply != nullptr) std::memcpy(r.reply, &reply, sizeof reply);
  const bool ok = reply.result == 0;
  write_status(r.status, ok ? kBlkStatusOk : kBlkStatusIoErr);
  mark_written(written);
  post_used(head, r.reply != nullptr ? static_cast<std::uint32_t>(sizeof reply) + 1 : 1);
}

// GUEST-CONTROLLED: the chain at `head`; parse_ringfence_request validates it.
void BlkQueue::take_ringfence(std::uint16_t head, std::uint32_t type) {
  auto parsed = parse_ringfence_request(type, chain_, *memory_);
  if (!parsed) {
    refused_[static_cast<std::size_t>(BlkRefusal::BadLayout)].fetch_add(1, std::memory_order_relaxed);
    post_used(head, 0);  // nowhere trustworthy to put a status
    return;
  }
  AttachReply reply{};
  reply.major = kAttachMajor;
  reply.minor = kAttachMinor;
  const bool attached = attached_.load(std::memory_order_acquire);
  switch (type) {
    case kBlkRingfenceNotify:
      if (!attached) {
        reply.result = ENOTCONN;
      } else if (notify_pending_) {
        notify_pending_ = false;  // a notification was waiting for a buffer: this one carries it
      } else {
        // Held until the device has something to signal; it takes one of the queue's slots and
        // is in flight like any request (finish() ends it).
        ParsedBlkRequest notify;
        notify.status = parsed->status;
        const std::uint32_t slot = take_slot(head, 0, notify);
        held_notify_.push_back(slot);
        in_flight_.fetch_add(1, std::memory_order_relaxed);
        return;
      }
      answer_ringfence(head, *parsed, reply, chain_);
      return;
    case kBlkRingfenceAttach:
      if (parsed->attach.magic != kAttachMagic || parsed->attach.major != kAttachMajor) {
        reply.result = EPROTONOSUPPORT;
      } else if (attached || pending_control_) {
        reply.result = EBUSY;
      }
      break;
    default:  // DETACH
      if (!attached || pending_control_) reply.result = attached ? EBUSY : ENOTCONN;
      break;
  }
  if (reply.result != 0) {
    answer_ringfence(head, *parsed, reply, chain_);
    return;
  }
  {
    std::lock_guard lock(control_mutex_);
    control_state_ = type == kBlkRingfenceAttach ? Control::AttachAsked : Control::DetachAsked;
    control_request_ = parsed->attach;
  }
  pending_control_ = parsed;
  pending_head_ = head;
  copy_written(pending_written_);
  signal_eventfd(control_.get());
}

void BlkQueue::check_control() {
  // The device went without the guest asking (detach_on_device_side): the NOTIFYs it holds end,
  // which tells the guest.
  if (!pending_control_ && !held_notify_.empty() && !attached_.load(std::memory_order_acquire)) {
    fail_held_notifications();
  }
  if (!pending_control_) return;
  AttachReply reply;
  {
    std::lock_guard lock(control_mutex_);
    if (control_state_ != Control::Done) return;
    control_state_ = Control::None;
    reply = control_reply_;
  }
  // A detach, or an attach that failed, leaves no device: the held NOTIFY requests end.
  if (!attached_.load(std::memory_order_acquire)) fail_held_notifications();
  answer_ringfence(pending_head_, *pending_control_, reply, pending_written_);
  pending_control_.reset();
}

void BlkQueue::deliver_notification() {
  if (!attached_.load(std::memory_order_acquire)) return;
  if (held_notify_.empty()) {
    notify_pending_ = true;  // the next NOTIFY the guest posts carries it
    return;
  }
  const std::uint32_t slot = held_notify_.back();
  held_notify_.pop_back();
  finish(slot);  // status OK, a used entry: the guest's virtqueue callback runs
}

void BlkQueue::fail_held_notifications() {
  for (const std::uint32_t slot : held_notify_) {
    slots_[slot].ok = false;
    finish(slot, /*io_error=*/false);  // the ring is gone, which the IOERR status tells the guest
  }
  held_notify_.clear();
  notify_pending_ = false;
}

void BlkQueue::service_control(const AttachFactory& make_device) {
  drain_eventfd(control_.get());
  Control asked;
  AttachRequest request;
  {
    std::lock_guard lock(control_mutex_);
    asked = control_state_;
    request = control_request_;
  }
  if (asked != Control::AttachAsked && asked != Control::DetachAsked) return;
  AttachReply reply{};
  if (asked == Control::AttachAsked) {
    AttachOutcome outcome;
    if (make_device) {
      outcome = make_device(request);
    } else {
      outcome.reply.result = EOPNOTSUPP;
    }
    reply = outcome.reply;
    if (outcome.device && reply.result == 0 && owner_log_ && !outcome.device->set_dirty_log(owner_log_)) {
      reply.result = EAGAIN;  // a device that cannot mark the dirty log while one is kept (the owner makes none)
    } else if (outcome.device && reply.result == 0) {
      auto started = outcome.device->start();
      // SAFETY: dup3 puts the device's eventfds behind the numbers the queue thread polls and
      // writes; the device keeps its own descriptors open as long as it lives.
      if (!started || ::dup3(outcome.device->kick_fd(), device_kick_.get(), O_CLOEXEC) < 0 ||
          ::dup3(outcome.device->notify_fd(), device_notify_.get(), O_CLOEXEC) < 0) {
        outcome.device->stop(std::chrono::milliseconds(0));
        reply.result = started ? static_cast<std::uint32_t>(errno) : EIO;
      } else {
        device_ = std::move(outcome.device);
        attached_.store(true, std::memory_order_release);
      }
    } else if (reply.result == 0) {
      reply.result = EIO;
    }
  } else {
    detach_device();
  }
  reply.major = kAttachMajor;
  reply.minor = kAttachMinor;
  {
    std::lock_guard lock(control_mutex_);
    control_reply_ = reply;
    control_state_ = Control::Done;
  }
  signal_eventfd(stop_.get());  // wake the queue thread to answer
}

void BlkQueue::detach_on_device_side() {
  detach_device();
  signal_eventfd(stop_.get());  // the queue thread sees no device and ends the held NOTIFYs
}

void BlkQueue::detach_device() {
  if (!device_) return;
  attached_.store(false, std::memory_order_release);
  device_->stop(kAttachDrain);
  // Fresh placeholders behind the stable numbers: nothing of the old device is reachable.
  UniqueFd kick(::eventfd(0, EFD_CLOEXEC)), notify(::eventfd(0, EFD_CLOEXEC));
  if (kick) ::dup3(kick.get(), device_kick_.get(), O_CLOEXEC);
  if (notify) ::dup3(notify.get(), device_notify_.get(), O_CLOEXEC);
  device_.reset();
}

void BlkQueue::cancel_in_flight() {
  fail_held_notifications();
  if (pending_control_) {
    AttachReply reply{};
    reply.result = ECANCELED;
    answer_ringfence(pending_head_, *pending_control_, reply, pending_written_);
    pending_control_.reset();
  }
  for (std::uint32_t i = 0; i < slots_.size(); ++i) {
    if (slots_[i].pieces_left == 0) continue;
    slots_[i].pieces_left = 0;
    slots_[i].ok = false;
    finish(i);
  }
  kernel_in_flight_ = 0;
}

BlkQueueStopReport BlkQueue::stop(std::chrono::milliseconds drain) {
  if (stopped_) return *stopped_;
  BlkQueueStopReport report;
  if (thread_.joinable()) {
    drain_.store(drain, std::memory_order_release);
    stopping_.store(true, std::memory_order_release);
    signal_eventfd(stop_.get());
    thread_.join();
  }
  detach_device();
  // Closing the ring makes the kernel cancel what is left; once it has freed the ring, nothing
  // of this queue can touch guest RAM, and what did not finish is failed to the guest.
  ring_.close();
  report.released = release_ && release_->wait_released(kReleaseTimeout);
  report.cancelled = in_flight_.load(std::memory_order_relaxed);
  if (!broken_.is_set()) {
    cancel_in_flight();
    publish_and_notify();
  }
  report.next_avail = last_avail_;
  stopped_ = report;
  return report;
}

std::string BlkQueue::describe() const {
  const BlkQueueCounters c = counters();
  // GUEST-CONTROLLED: the guest's words, read for a log line only.
  return fmt::format("queue {}: size {}, taken up to avail {} (guest's avail idx {}), used {} published, {} in flight, "
                     "{} requests, {} completed, {} notifications, used_event {}, avail flags {:#x}, event_idx {}, {}{}",
                     config_.index, queue_.size(), last_avail_mirror_.load(std::memory_order_relaxed), queue_.load_avail_idx(),
                     used_mirror_.load(std::memory_order_relaxed), c.in_flight, c.requests, c.completed, c.notifications,
                     queue_.load_used_event(), queue_.load_avail_flags(), config_.event_idx,
                     has_call_.load(std::memory_order_relaxed) ? "call set" : "no call fd",
                     c.broken != BrokenReason::None ? "; broken: " + c.broken_detail : "");
}

BlkQueueCounters BlkQueue::counters() const {
  BlkQueueCounters c;
  c.requests = requests_.load(std::memory_order_relaxed);
  c.completed = completed_.load(std::memory_order_relaxed);
  c.kernel_ios = kernel_ios_.load(std::memory_order_relaxed);
  c.io_errors = io_errors_.load(std::memory_order_relaxed);
  for (std::size_t i = 0; i < kBlkRefusalCount; ++i) c.refused[i] = refused_[i].load(std::memory_order_relaxed);
  c.notifications = notifications_.load(std::memory_order_relaxed);
  c.in_flight = in_flight_.load(std::memory_order_relaxed);
  c.resubmitted = resubmitted_.load(std::memory_order_relaxed);
  c.logged_pages = logged_pages_.load(std::memory_order_relaxed);
  c.broken = broken_.reason();
  c.broken_detail = broken_.detail();
  return c;
}

}  // namespace rf::virtio
