#!/usr/bin/env bash
# Prints the version of the Debian kernel the QEMU tests boot: the newest /boot/vmlinuz-* that
# has its modules (never the running kernel's `uname -r`: the host may run another one).
# With --headers, prints the kernel headers' directory for that version instead (what rfblk.ko
# is built against). Exits 1 with the reason on stderr when there is none.
set -euo pipefail
for k in $(ls -1 /boot/vmlinuz-* 2>/dev/null | sort -V -r); do
  v=${k#/boot/vmlinuz-}
  [[ -d /lib/modules/$v/kernel ]] || continue
  if [[ ${1:-} == --headers ]]; then
    if [[ -f /lib/modules/$v/build/Makefile ]]; then echo "/lib/modules/$v/build"; exit 0; fi
    echo "no kernel headers for $v: install linux-headers-amd64 (scripts/install-deps.sh)" >&2
    exit 1
  fi
  echo "$v"
  exit 0
done
echo "no /boot/vmlinuz-* with its modules: install linux-image-amd64 (scripts/install-deps.sh)" >&2
exit 1
