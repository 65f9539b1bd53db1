#!/usr/bin/env bash
# Runs `ringfence bench`'s four Linux-guest rows briefly (iodepth 1, 1 s, a 64 MiB file) and checks
# that each measured a number and its host CPU (the back-end's and QEMU's), that the targets table
# has each target that applies at that depth (undecided: one round has no interval), and that the
# JSON report has a job per row. Exit 77 (skip) where QEMU, qemu-storage-daemon, the kernel
# image or rfblk.ko is missing, with the reason.
#
#   check-bench-linux-rows.sh RINGFENCE WORK_DIR RFBLK_KO|"" [WHY_NO_RFBLK]
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
ringfence=${1:?usage: check-bench-linux-rows.sh RINGFENCE WORK_DIR RFBLK_KO [WHY]}
work=${2:?}
rfblk=${3:-}
command -v qemu-system-x86_64 >/dev/null || { echo "skip: qemu-system-x86_64 is not installed"; exit 77; }
command -v qemu-storage-daemon >/dev/null || { echo "skip: qemu-storage-daemon is not installed"; exit 77; }
[[ -n "$rfblk" ]] || { echo "skip: ${4:-rfblk.ko was not built}"; exit 77; }
mkdir -p "$work"
# The QEMU tests' image (run-guest.sh builds the same one; make-initramfs.sh takes turns).
image=$(dirname "$work")/guest-image
rc=0
"$here/make-initramfs.sh" "$image" "$rfblk" || rc=$?
[[ $rc -eq 77 ]] && exit 77
[[ $rc -eq 0 ]] || { echo "FAIL: building the guest image failed ($rc)"; exit 1; }

target=$work/target.img
head -c 64M /dev/urandom >"$target"
out=$("$ringfence" bench --rows linux-passthrough,linux-mediated,linux-virtio,qsd-virtio --iodepth 1 --repeat 1 --runtime 1 \
      --ramp 0 --target "$target" --guest-image "$image" --json "$work/report.json" 2>&1)
rc=$?
echo "$out"
rm -f "$target"
[[ $rc -eq 0 ]] || { echo "FAIL: ringfence bench exited $rc"; exit 1; }
for row in linux-passthrough linux-mediated linux-virtio qsd-virtio; do
  n=$(echo "$out" | grep -cE "^\| $row +\| [0-9]+\.[0-9] +\|$")
  [[ $n -eq 2 ]] || { echo "FAIL: $row has $n of 2 figures (kIOPS, kIOPS per CPU-second)"; exit 1; }
done
echo "$out" | grep -q "^Linux-guest rows: .* -accel tcg" || { echo "FAIL: the header does not name the accelerator"; exit 1; }
decided=$(echo "$out" | grep -cE "^\| linux-(passthrough|mediated|virtio) ≥ .*\| [0-9.]+ undecided +\|$")
[[ $decided -eq 3 ]] || { echo "FAIL: $decided of the 3 targets that apply at iodepth 1 were shown"; exit 1; }
jobs=$(grep -c '"jobname"' "$work/report.json")
[[ $jobs -eq 4 ]] || { echo "FAIL: the JSON report has $jobs jobs, not 4"; exit 1; }
echo PASS
