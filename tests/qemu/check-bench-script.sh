#!/usr/bin/env bash
# Runs scripts/bench-vhost-user.sh briefly (1 s per depth, iodepth 1 and 8, a 64 MiB zram device)
# and checks that it printed a row per depth for both back-ends. Exit 77 (skip) where QEMU or zram
# is missing.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
ringfence=${1:?usage: check-bench-script.sh RINGFENCE}
command -v qemu-system-x86_64 >/dev/null || { echo "skip: qemu-system-x86_64 is not installed"; exit 77; }
command -v qemu-storage-daemon >/dev/null || { echo "skip: qemu-storage-daemon is not installed"; exit 77; }
modprobe zram 2>/dev/null
[[ -e /sys/class/zram-control/hot_add ]] || { echo "skip: this kernel has no zram"; exit 77; }
out=$("$here/../../scripts/bench-vhost-user.sh" --ringfence "$ringfence" --seconds 1 --iodepth 1,8 --size 64M 2>&1)
rc=$?
echo "$out"
[[ $rc -eq 0 ]] || { echo "FAIL: the bench script exited $rc"; exit 1; }
for depth in 1 8; do
  echo "$out" | grep -Eq "^\| $depth \| [0-9]+\.[0-9]+ \| [0-9]+\.[0-9]+ \| [0-9]+\.[0-9]+ \| (met|missed) \|$" ||
    { echo "FAIL: no table row for iodepth $depth"; exit 1; }
done
echo PASS
