// The seccomp filter of a virtio queue thread of `ringfence vhost-user-blk`: the one thread per
// virtqueue that reads and writes guest memory. Like Firecracker's per-thread filters, it is
// installed by the thread on itself, before it touches guest memory, and names only the system
// calls that thread makes, with their descriptors where the call takes one. Default action:
// kill the whole process (SIGSYS), since a queue thread that makes any other call is no longer
// running the back-end's code. `ringfence policy seccomp` prints the list with the reasons.
#pragma once

#include <string_view>
#include <vector>

namespace rf::policy {

// The descriptors a queue thread uses; each is allowed only for the calls that need it.
struct QueueThreadFds {
  int ring = -1;          // its private io_uring
  int kick = -1;          // the front-end's kick eventfd (read)
  int ring_eventfd = -1;  // the private ring's completion eventfd (read)
  int stop = -1;          // the queue's own wake-up eventfd (read)
  int call = -1;          // the call eventfd's stable number (write)
  int device_kick = -1;    // an attached shared ring's doorbell, a stable number (write)
  int device_notify = -1;  // its notification eventfd, a stable number (read)
  int control = -1;        // the owner's wake-up for an attach or detach (write)
};

// One rule: the call, the descriptor its first argument must be (if any), whether it may map
// executable memory (never), and why the thread needs it.
struct QueueThreadAllowance {
  std::string_view syscall;
  std::vector<int> first_argument_in;  // empty: any first argument
  bool no_exec_protection = false;     // the third argument (prot) must not contain PROT_EXEC
  std::string_view reason;
};

std::vector<QueueThreadAllowance> queue_thread_allow_list(const QueueThreadFds& fds);

// Installs the filter on the calling thread only (with no_new_privs). Returns 0 or -errno.
int install_queue_thread_seccomp(const QueueThreadFds& fds);

}  // namespace rf::policy
