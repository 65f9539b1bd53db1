#!/usr/bin/env bash
# The raw kernel ABI (syscall shims, <linux/io_uring.h> and its compat header) stays in src/sys/
# (STYLE.md section 1): everything else goes through the typed wrappers in src/ (ring/, host/).
# Only src/ may include "sys/...", and the tests whose subject is the kernel's raw interface
# itself: tests/ring/ (restrictions and registration as the kernel answers raw calls) and
# tests/vmm/ring_entries_test.cc (the guest ABI's SQE/CQE layout against the kernel's).
# Prints each offender; exits 1 if there is any.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
while IFS=: read -r file line text; do
  case "$file" in
    src/*|tests/ring/*|tests/vmm/ring_entries_test.cc) continue ;;
  esac
  echo "$file:$line: includes the raw kernel layer (${text#*#include }): use a typed wrapper from src/ instead" >&2
  status=1
done < <(git ls-files -- '*.h' '*.cc' '*.c' | xargs grep -n -E '#include "sys/' || true)
[[ $status -eq 0 ]] && echo "check-sys-includes: only src/ and the raw-kernel tests include sys/"
exit $status
