#pragma once

#include <optional>
#include <string>

namespace rf::cli {

struct VhostUserBlkArgs {
  std::string socket;
  std::string disk;
  bool read_only = false;
  bool incoming = false;  // a live migration's target: the source's back-end still holds the disk
  unsigned queues = 1;
  std::string policy = "blk-virtio";
  std::string serial = "ringfence";
  std::string mode = "mediated";
  std::optional<unsigned> sqpoll_cpu;  // passthrough attaches: the kernel SQPOLL thread, on this CPU
  std::string hostile_completions;     // TEST ONLY: a CompletionFault's name, or empty
  std::uint64_t hostile_after = 2000;  // honest completions per ring before it
};

// `ringfence vhost-user-blk`: serves the disk to vhost-user front-ends (QEMU's vhost-user-blk-pci
// and the other VMMs that speak vhost-user-blk) on the socket, one connection after another,
// every request through a restricted private ring, until SIGINT or SIGTERM. Exit status 0 after
// a signal, 1 when it cannot start (the message says why and what to do).
int run_vhost_user_blk(const VhostUserBlkArgs& args);

}  // namespace rf::cli
