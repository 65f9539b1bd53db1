#include "restrictions/queue_thread_seccomp.h"

#include <seccomp.h>
#include <sys/mman.h>
#include <sys/prctl.h>

#include <cerrno>
#include <string>

namespace rf::policy {

std::vector<QueueThreadAllowance> queue_thread_allow_list(const QueueThreadFds& fds) {
  std::vector<QueueThreadAllowance> list{
      {"io_uring_enter", {fds.ring}, false,
       "handing validated pieces of guest requests to the queue's private ring (it never waits in the kernel)"},
      {"read", {fds.kick, fds.ring_eventfd, fds.stop, fds.device_notify}, false,
       "taking the count of the kick, completion, wake-up and attached ring's notification eventfds after poll said "
       "they are readable"},
      {"write", {fds.call, fds.device_kick, fds.control}, false,
       "notifying the guest through the call eventfd, ringing an attached ring's doorbell, asking the main thread to "
       "attach or detach one (each a stable descriptor number)"},
      {"poll", {}, false, "sleeping on those eventfds when there is nothing to do"},
      {"ppoll", {}, false, "the same, where the C library implements poll() with ppoll"},
      {"restart_syscall", {}, false, "the kernel resuming a poll that a signal to the process interrupted"},
      {"futex", {}, false, "the thread's own lock (the broken flag's reason) and the C library's internal locks"},
      {"clock_gettime", {}, false, "the drain deadline when the queue stops (normally answered by the vDSO)"},
      {"mmap", {}, true, "the C library's allocator, for the text of a broken queue's reason (never executable)"},
      {"mprotect", {}, true, "the allocator growing its arena (never executable)"},
      {"munmap", {}, false, "the allocator giving memory back"},
      {"madvise", {}, false, "the allocator, and the C library freeing the thread's stack when it ends"},
      {"brk", {}, false, "the allocator on the main arena"},
      {"rt_sigprocmask", {}, false, "the C library blocking signals while the thread ends"},
      {"exit", {}, false, "the end of the thread"},
  };
#if defined(__SANITIZE_ADDRESS__)
  list.push_back({"sigaltstack", {}, false, "sanitizer builds only: AddressSanitizer sets up and removes the thread's signal stack"});
  list.push_back({"getpid", {}, false, "sanitizer builds only: AddressSanitizer's reports and its allocator"});
  list.push_back({"sched_yield", {}, false, "sanitizer builds only: AddressSanitizer's spin locks"});
  // The runtime checks whether memory is readable by writing it into a pipe of its own, so in
  // these builds read and write take any descriptor: the test builds give up that part of the
  // filter, release builds keep it.
  list.push_back({"pipe2", {}, false, "sanitizer builds only: the runtime's memory probe makes a pipe"});
  list.push_back({"write", {}, false, "sanitizer builds only: the runtime's memory probe writes into its pipe"});
  list.push_back({"read", {}, false, "sanitizer builds only: the runtime's memory probe reads its pipe"});
  list.push_back({"close", {}, false, "sanitizer builds only: the runtime's memory probe closes its pipe"});
#endif
  return list;
}

int install_queue_thread_seccomp(const QueueThreadFds& fds) {
  // Anything not listed kills the whole process (SIGSYS), system calls of another architecture
  // (x32, i386) included.
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
  if (ctx == nullptr) return -ENOMEM;
  int rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
  // The filter is this thread's alone: no TSYNC, so the rest of the process keeps its own calls.
  if (rc == 0) rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 0);
  for (const QueueThreadAllowance& allow : queue_thread_allow_list(fds)) {
    if (rc != 0) break;
    const int nr = seccomp_syscall_resolve_name(std::string(allow.syscall).c_str());
    if (nr == __NR_SCMP_ERROR) {
      rc = -EINVAL;
      break;
    }
    if (!allow.first_argument_in.empty()) {
      for (const int fd : allow.first_argument_in) {
        if (rc == 0) rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1, SCMP_A0(SCMP_CMP_EQ, static_cast<scmp_datum_t>(fd)));
      }
    } else if (allow.no_exec_protection) {
      rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1, SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
    } else {
      rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
    }
  }
  if (rc == 0) rc = seccomp_load(ctx);
  seccomp_release(ctx);
  return rc;
}

}  // namespace rf::policy
