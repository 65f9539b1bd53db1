#include "restrictions/guest_seccomp.h"

#include <seccomp.h>

#include <cerrno>
#include <string>

namespace rf::policy {

std::vector<SeccompAllowance> guest_seccomp_allow_list(int kick_fd, int notify_fd) {
  std::vector<SeccompAllowance> list{
      {"write", static_cast<std::uint64_t>(kick_fd),
       "the doorbell: the driver's kick callback writes 1 to the kick eventfd when the SQPOLL thread sleeps"},
      {"read", static_cast<std::uint64_t>(notify_fd),
       "waiting for completions: the driver's wait callback reads the notification eventfd (blocking)"},
      {"exit_group", std::nullopt, "ending the guest with its exit status (_exit)"},
  };
#if defined(__SANITIZE_ADDRESS__)
  list.push_back({"sigaltstack", 0,
                  "sanitizer builds only: AddressSanitizer queries the signal stack (first argument NULL: "
                  "nothing is changed) before every call to a function that does not return, such as _exit"});
#endif
  return list;
}

int install_guest_seccomp(int kick_fd, int notify_fd) {
  // Anything not listed kills the whole process (SIGSYS), including system calls of another
  // architecture (x32, i386) made on purpose to slip past the list.
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
  if (ctx == nullptr) return -ENOMEM;
  int rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
  for (const SeccompAllowance& allow : guest_seccomp_allow_list(kick_fd, notify_fd)) {
    if (rc != 0) break;
    const int nr = seccomp_syscall_resolve_name(std::string(allow.syscall).c_str());
    if (nr == __NR_SCMP_ERROR) {
      rc = -EINVAL;
      break;
    }
    rc = allow.first_argument ? seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1, SCMP_A0(SCMP_CMP_EQ, *allow.first_argument))
                              : seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
  }
  if (rc == 0) rc = seccomp_load(ctx);
  seccomp_release(ctx);
  return rc;
}

}  // namespace rf::policy
