#!/usr/bin/env bash
# The peer, side by side: boots the same Linux guest (Debian's kernel, stock virtio_blk, the
# tests' initramfs) in QEMU twice per round, once against `ringfence vhost-user-blk` and once
# against Debian's `qemu-storage-daemon --export type=vhost-user-blk` (aio=io_uring,
# cache.direct=on), both serving the same block device, and runs the same fio job in the guest:
# 4 KiB random reads, O_DIRECT, at each iodepth. Prints kIOPS per back-end and depth, the ratio
# ringfence / qemu-storage-daemon, the target (ratio >= 0.95) met or missed, and each back-end's
# CPU time.
#
#   scripts/bench-vhost-user.sh [--ringfence BIN] [--target zram|PATH] [--size 1G] [--seconds 10]
#                               [--iodepth 1,8,16,32] [--queues 1] [--repeat 1] [--accel tcg|kvm]
#
#   --target zram   (default) a new zram device filled with random data: a CPU-bound disk that
#                   both back-ends reach as a block device (ringfence registers it directly,
#                   qemu-storage-daemon opens it with driver=host_device)
#   --target PATH   an existing image file or block device (an image goes through ringfence's loop
#                   device and straight to qemu-storage-daemon's file driver; it is only read)
#   --repeat N      N rounds; the order of the back-ends alternates, the median is reported
#
# Guests run under TCG unless --accel kvm: on this project's machines /dev/kvm is PVM, which
# emulates ordinary guests far slower (docs/kvm.md). Under TCG the guest's own emulation bounds
# the IOPS; the ratio says what the back-end costs beyond it. docs/benchmarks.md has the table.
set -euo pipefail
cd "$(dirname "$0")/.."

ringfence=build/ringfence target=zram size=1G seconds=10 depths=1,8,16,32 queues=1 repeat=1 accel=tcg
while [[ $# -gt 0 ]]; do
  case $1 in
    --ringfence) ringfence=$2; shift 2 ;;
    --target) target=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --iodepth) depths=$2; shift 2 ;;
    --queues) queues=$2; shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    --accel) accel=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-vhost-user: unknown argument '$1' (--help lists them)" >&2; exit 2 ;;
  esac
done
for tool in qemu-system-x86_64 qemu-storage-daemon; do
  command -v $tool >/dev/null || { echo "bench-vhost-user: $tool is missing; scripts/install-deps.sh installs it" >&2; exit 2; }
done
[[ -x "$ringfence" ]] || { echo "bench-vhost-user: no ringfence binary at '$ringfence' (build first, or --ringfence BIN)" >&2; exit 2; }
[[ "$seconds" =~ ^[0-9]+$ && "$repeat" =~ ^[0-9]+$ && "$queues" =~ ^[0-9]+$ ]] || { echo "bench-vhost-user: --seconds, --repeat and --queues take whole numbers" >&2; exit 2; }

work=$(mktemp -d /tmp/rf-bench-vhost-user.XXXXXX)
zram=""
backend_pid=""
qemu_pid=""
cleanup() {
  [[ -n "$qemu_pid" ]] && kill -9 "$qemu_pid" 2>/dev/null || true
  [[ -n "$backend_pid" ]] && kill -9 "$backend_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  if [[ -n "$zram" ]]; then
    echo 1 >"/sys/block/$zram/reset" 2>/dev/null || true
    echo "${zram#zram}" >/sys/class/zram-control/hot_remove 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

if [[ "$target" == zram ]]; then
  modprobe zram 2>/dev/null || true
  [[ -e /sys/class/zram-control/hot_add ]] || { echo "bench-vhost-user: no zram here (modprobe zram failed); use --target PATH" >&2; exit 2; }
  zram=zram$(cat /sys/class/zram-control/hot_add)
  echo "$size" >"/sys/block/$zram/disksize"
  device=/dev/$zram
  echo "bench-vhost-user: filling $device ($size) with random data" >&2
  dd if=/dev/urandom of="$device" bs=1M oflag=direct status=none 2>/dev/null || true
  qsd_driver=host_device
else
  device=$target
  [[ -e "$device" ]] || { echo "bench-vhost-user: '$device' does not exist" >&2; exit 2; }
  qsd_driver=file
  [[ -b "$device" ]] && qsd_driver=host_device
fi

image_dir=build/qemu-bench/guest-image
mkdir -p "$image_dir"
# The same image as `ringfence bench`'s Linux-guest rows (cmake --build build --target guest-image):
# with rfblk.ko where the build made it, so that neither strips it from the other.
rfblk=build/guest-linux/rfblk/rfblk.ko
[[ -f $rfblk ]] || rfblk=""
tests/qemu/make-initramfs.sh "$image_dir" $rfblk || { echo "bench-vhost-user: cannot build the guest (install-deps.sh installs what it needs)" >&2; exit 2; }

IFS=, read -ra depth_list <<<"$depths"
socket=$work/vub.sock

start_backend() {  # start_backend NAME: the back-end serving $device on $socket
  rm -f "$socket"
  case $1 in
    ringfence)
      "$ringfence" vhost-user-blk --socket "$socket" --disk "$device" --read-only --queues "$queues" >"$work/$1.log" 2>&1 & ;;
    qemu-storage-daemon)
      qemu-storage-daemon \
        --blockdev "driver=$qsd_driver,node-name=disk0,filename=$device,aio=io_uring,cache.direct=on,read-only=on" \
        --export "type=vhost-user-blk,id=exp0,node-name=disk0,addr.type=unix,addr.path=$socket,writable=off,num-queues=$queues" \
        >"$work/$1.log" 2>&1 & ;;
  esac
  backend_pid=$!
  for _ in $(seq 1 100); do [[ -S "$socket" ]] && return 0; sleep 0.1; done
  echo "bench-vhost-user: $1 did not open its socket:" >&2; cat "$work/$1.log" >&2; exit 1
}
cpu_seconds() {  # user + system time of a process so far
  awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$1/stat"
}

declare -A iops cpu
run_one() {  # run_one BACKEND ROUND
  local name=$1 round=$2 console=$work/console-$1-$2.log
  start_backend "$name"
  local cpu_before
  cpu_before=$(cpu_seconds "$backend_pid")
  qemu-system-x86_64 -accel "$accel" -m 512 -smp "$queues" -nographic -nodefaults -no-reboot -serial "file:$console" \
    -object memory-backend-memfd,id=mem,size=512M,share=on -numa node,memdev=mem \
    -chardev socket,id=vub0,path="$socket" -device vhost-user-blk-pci,chardev=vub0,num-queues="$queues" \
    -kernel "$image_dir/vmlinuz" -initrd "$image_dir/initramfs.cpio" \
    -append "console=ttyS0 quiet panic=-1 rf.scenario=fio-bench rf.args=$seconds,${depths}" >"$console.qemu" 2>&1 &
  qemu_pid=$!
  wait "$qemu_pid" || true
  qemu_pid=""
  local cpu_after
  cpu_after=$(cpu_seconds "$backend_pid")
  kill -TERM "$backend_pid"; wait "$backend_pid" 2>/dev/null || true; backend_pid=""
  grep -q "RF-RESULT: PASS" "$console" || { echo "bench-vhost-user: the guest failed against $name:" >&2; tail -20 "$console" >&2; exit 1; }
  for d in "${depth_list[@]}"; do
    local n
    n=$(grep -a "rf-bench: iodepth $d iops" "$console" | awk '{print $5}')
    iops[$name,$d]="${iops[$name,$d]:-} $n"
  done
  cpu[$name]="${cpu[$name]:-} $(awk -v a="$cpu_before" -v b="$cpu_after" 'BEGIN{printf "%.2f", b - a}')"
  echo "bench-vhost-user: round $round, $name: $(for d in "${depth_list[@]}"; do grep -a "rf-bench: iodepth $d iops" "$console" | awk '{printf "%s ", $5}'; done)IOPS" >&2
}
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

for round in $(seq 1 "$repeat"); do
  if (( round % 2 == 1 )); then order=(ringfence qemu-storage-daemon); else order=(qemu-storage-daemon ringfence); fi
  for name in "${order[@]}"; do run_one "$name" "$round"; done
done

echo
echo "Guest: Debian $(basename "$(readlink "$image_dir/vmlinuz")"), QEMU $(qemu-system-x86_64 --version | head -1 | awk '{print $4}') -accel $accel, -smp $queues, $queues queue(s); disk: $device ($size); fio randread 4 KiB O_DIRECT libaio, ${seconds} s per depth; median of $repeat round(s)."
echo
echo "| iodepth | ringfence kIOPS | qemu-storage-daemon kIOPS | ratio | target ≥ 0.95 |"
echo "|---:|---:|---:|---:|:--|"
for d in "${depth_list[@]}"; do
  rf=$(echo "${iops[ringfence,$d]}" | median)
  qsd=$(echo "${iops[qemu-storage-daemon,$d]}" | median)
  awk -v d="$d" -v rf="$rf" -v qsd="$qsd" 'BEGIN {
    ratio = qsd > 0 ? rf / qsd : 0
    verdict = (ratio >= 0.95) ? "met" : "missed"
    printf "| %s | %.2f | %.2f | %.3f | %s |\n", d, rf / 1000, qsd / 1000, ratio, verdict
  }'
done
echo
echo "Back-end CPU time per round (s): ringfence$(echo "${cpu[ringfence]}" | sed 's/ /, /g; s/^,//'); qemu-storage-daemon$(echo "${cpu[qemu-storage-daemon]}" | sed 's/ /, /g; s/^,//')"
