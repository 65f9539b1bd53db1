#include "cli/vhost_user_blk_command.h"

#include <pthread.h>
#include <signal.h>

#include <chrono>
#include <iostream>
#include <thread>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include "device/device_thread.h"
#include "disk/disk.h"
#include "restrictions/diagnostic.h"
#include "restrictions/policy_compiler.h"
#include "restrictions/policy_loader.h"
#include "ring/kernel_facts.h"
#include "vhost_user/blk_server.h"

namespace rf::cli {

namespace {

void log_line(std::string_view line) {
  const auto now = std::chrono::system_clock::now();
  std::cerr << fmt::format("{:%H:%M:%S} ringfence vhost-user-blk: {}\n", std::chrono::floor<std::chrono::seconds>(now), line)
            << std::flush;
}

int fail(std::string_view message) {
  std::cerr << "ringfence vhost-user-blk: " << message << "\n";
  return 1;
}

// Which of DISCARD and WRITE_ZEROES the guest is offered, and why not.
std::string describe_zeroing(const Disk& disk, const RestrictionSet& restrictions, std::string_view policy) {
  const virtio::BlkZeroing offered = vhost_user::offered_zeroing(disk.zeroing(), restrictions);
  if (!restrictions.allows(SqeOpcode::Fallocate)) {
    return fmt::format("DISCARD and WRITE_ZEROES are not offered: the policy {} does not allow FALLOCATE", policy);
  }
  if (!offered.write_zeroes) {
    return fmt::format("DISCARD and WRITE_ZEROES are not offered: the disk is {}",
                       disk.read_only() ? "read-only" : "a file registered directly");
  }
  if (!offered.discard) {
    return "WRITE_ZEROES is offered (the kernel writes zero pages); DISCARD is not: the device cannot zero by itself "
           "(its queue/write_zeroes_max_bytes is 0)";
  }
  return "DISCARD and WRITE_ZEROES are offered (the device zeroes and may deallocate)";
}

}  // namespace

int run_vhost_user_blk(const VhostUserBlkArgs& args) {
  if (const auto why = io_uring_unavailable()) return fail(fmt::format("cannot start: {}", *why));
  auto policy = policy::load_checked_policy(args.policy, nullptr);
  if (!policy) {
    std::string all;
    for (const auto& d : policy.error()) all += "\n  " + policy::format_diagnostic(d);
    return fail(fmt::format("the policy '{}' is refused:{}", args.policy, all));
  }
  if (policy->policy.mode != policy::Mode::Mediated) {
    return fail(fmt::format("the policy '{}' is for passthrough rings; every virtio request goes through the back-end's "
                            "private ring, which takes a mediated policy (blk-virtio, blk-mediated, or a file with mode = \"mediated\")",
                            args.policy));
  }
  if (args.sqpoll_cpu && args.mode != "passthrough") {
    return fail("--sqpoll-cpu pins the kernel SQPOLL thread of passthrough rings; it needs --mode passthrough");
  }
  if (!args.hostile_completions.empty() && args.mode != "mediated") {
    return fail("--hostile-completions needs --mode mediated: in passthrough the host kernel writes the CQEs");
  }
  if (args.sqpoll_cpu) {
    if (auto cpu = check_device_cpu(*args.sqpoll_cpu); !cpu) return fail(fmt::format("--sqpoll-cpu: {}", cpu.error().message));
  }
  DiskOptions disk_options;
  disk_options.read_only = args.read_only;
  // Checked (and locked, so that a disk another process writes is refused now rather than when a
  // guest starts) and closed again by the server, which opens it while a guest's queues run. A
  // migration's target cannot take the lock the source holds.
  disk_options.lock = !args.incoming;
  auto disk = Disk::open(args.disk, disk_options);
  if (!disk) return fail(fmt::format("the disk: {}", disk.error().message));

  // Signals go to one thread that asks the server to stop; every other thread (the queues'
  // included, which inherit the mask) has them blocked.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  vhost_user::BlkServerOptions options;
  options.socket_path = args.socket;
  options.backend.queues = args.queues;
  options.backend.restrictions = policy::compile_policy(policy->policy);
  options.backend.serial = args.serial;
  options.backend.attach_mode = args.mode == "passthrough" ? virtio::AttachMode::Passthrough : virtio::AttachMode::Mediated;
  options.backend.sqpoll_cpu = args.sqpoll_cpu;
  if (args.hostile_completions == "unknown-user-data") options.backend.attach_fault = CompletionFault::UnknownUserData;
  if (args.hostile_completions == "oversized-res") options.backend.attach_fault = CompletionFault::OversizedResult;
  if (args.hostile_completions == "cq-tail-jump") options.backend.attach_fault = CompletionFault::CqTailJump;
  if (args.hostile_completions == "dropped-cqe") options.backend.attach_fault = CompletionFault::DroppedCqe;
  options.backend.fault_after = args.hostile_after;
  options.log = log_line;
  const std::string zeroing = describe_zeroing(*disk, options.backend.restrictions, policy->policy.name);
  const std::string described = disk->describe();
  auto server = vhost_user::BlkServer::listen(std::move(*disk), std::move(options));
  if (!server) return fail(server.error());
  log_line(fmt::format("serving {} on {} with {} queue{}, policy {}; a ringfence-aware guest may attach a {} ring{}",
                       described, args.socket, args.queues, args.queues == 1 ? "" : "s", policy->policy.name, args.mode,
                       args.incoming ? "; the target of a migration: the disk is opened when the guest's queues start here"
                                     : ""));
  log_line(zeroing);
  if (!args.hostile_completions.empty()) {
    log_line(fmt::format("TEST MODE: every attached ring posts {} honest completions, then one {} (--hostile-completions)",
                         args.hostile_after, args.hostile_completions));
  }

  std::thread waiter([&signals, &server] {
    for (;;) {
      int signal = 0;
      sigwait(&signals, &signal);
      if (signal == SIGUSR1) {  // a state dump, for a stalled guest's diagnosis
        (*server)->log_state();
        continue;
      }
      log_line(fmt::format("{}: stopping", signal == SIGINT ? "SIGINT" : "SIGTERM"));
      (*server)->stop();
      return;
    }
  });
  (*server)->run();
  // run() only returns after stop(): the waiter has its signal.
  waiter.join();
  const auto stats = (*server)->stats();
  log_line(fmt::format("stopped after {} connection{} ({} closed for a refused message, {} turned away)", stats.connections,
                       stats.connections == 1 ? "" : "s", stats.refused_messages, stats.turned_away));
  return 0;
}

}  // namespace rf::cli
