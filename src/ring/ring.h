// Ring: an enabled, restricted ring whose self-check passed. Only RestrictedRing::enable()
// makes one, so holding a Ring means its restrictions are in force.
#pragma once

#include <chrono>
#include <optional>
#include <span>

#include "ring/completion_queue.h"
#include "ring/registered_buffers.h"
#include "ring/restriction.h"
#include "ring/ring_core.h"
#include "ring/self_check.h"
#include "ring/sqe.h"
#include "ring/submission_queue.h"

namespace rf {

class Ring {
 public:
  Ring(Ring&&) noexcept = default;
  Ring& operator=(Ring&&) noexcept = default;

  // Queues an SQE; false when the SQ is full (back-pressure: keep it and retry later).
  bool try_push(const Sqe& sqe) { return core_.sq().try_push(sqe); }
  // Publishes queued SQEs and tells the kernel: io_uring_enter for a plain ring, a wake-up
  // for an SQPOLL ring whose thread sleeps. Returns the number published.
  Result<unsigned, RingError> submit();
  std::optional<Cqe> pop_completion() { return core_.cq().pop(); }
  // Waits up to `timeout` for a completion (returns RingErrc::Timeout when none arrives).
  Result<Cqe, RingError> wait_completion(std::chrono::milliseconds timeout);
  // Pushes one SQE, submits it and waits for the next completion. For probes and tests on a
  // ring with nothing else in flight.
  Result<Cqe, RingError> submit_and_wait(const Sqe& sqe, std::chrono::milliseconds timeout);

  // Registration after enable goes through the kernel's restriction check: unless the
  // restriction set allows the opcode, these fail with RingErrc::RegisterDenied (EACCES).
  Result<void, RingError> register_files(std::span<const int> fds);
  Result<BufferTable, RingError> register_buffers(std::span<const BufferRegion> regions);

  // For audits: calls io_uring_register(fd, op, NULL, 0) and returns its raw result (0 or
  // -errno). Meant for opcodes the restriction set denies (expected: -EACCES); an allowed
  // opcode runs for real with a null argument.
  int probe_register_opcode(unsigned op);

  // The ring descriptor, borrowed: for IORING_SETUP_ATTACH_WQ and for handing the ring's
  // powers to code that will own it. Whoever holds it can call io_uring_register, which is
  // why passthrough guests never get it.
  int fd() const { return core_.fd(); }
  // Closes the ring early (RingCore::close): for a device that stops before it is destroyed.
  // Nothing but info(), restrictions(), self_check() and is_open() may be called afterwards.
  void close() noexcept { core_.close(); }
  bool is_open() const { return core_.is_open(); }
  const RingInfo& info() const { return core_.info(); }
  const RestrictionSet& restrictions() const { return restrictions_; }
  const SelfCheckReport& self_check() const { return self_check_; }
  SubmissionQueue& sq() { return core_.sq(); }
  CompletionQueue& cq() { return core_.cq(); }

 private:
  friend class RestrictedRing;
  Ring(RingCore core, RestrictionSet restrictions) : core_(std::move(core)), restrictions_(std::move(restrictions)) {}

  RingCore core_;
  RestrictionSet restrictions_;
  SelfCheckReport self_check_;
};

}  // namespace rf
