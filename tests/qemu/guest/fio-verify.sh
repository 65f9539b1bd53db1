# fio-verify.sh JOBS RW:DEPTH[:hipri]...: for each RW:DEPTH (RW = randwrite or randrw), writes the
# whole of the disk (/dev/$RF_DISK) with crc32c-checksummed 4 KiB blocks and reads every one back
# (randwrite), or runs a random read/write mix whose writes are checked when read back (randrw),
# at that iodepth. JOBS fio jobs split the disk between them, one per CPU, so that with -smp 2
# and two queues both queues carry I/O.
# With :hipri, fio uses io_uring with IORING_SETUP_IOPOLL (--hipri): the requests go to rfblk's
# poll queues and complete by polling, so the driver's interrupts must stay (nearly) still.
disk=${RF_DISK:-vda}
jobs=$1; shift
size=$(cat /sys/block/$disk/size)
bytes=$((size * 512 / jobs / 4096 * 4096))
cpus=$(($(nproc) - 1))
# Interrupts taken by the disk's virtqueues so far (every CPU's column).
irqs() {
  grep -E "virtio[0-9]+-(rfblk|req)" /proc/interrupts |
    awk '{for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) s += $i} END {print s + 0}'
}
for run in "$@"; do
  rw=${run%%:*}; rest=${run#*:}; depth=${rest%%:*}; mode=${rest#"$depth"}; mode=${mode#:}
  engine="--ioengine=libaio"
  [ "$mode" = hipri ] && engine="--ioengine=io_uring --hipri"
  echo "rf: fio $rw iodepth $depth ${mode:-interrupts}, $jobs job(s) of $bytes bytes"
  before=$(irqs)
  if ! fio --name="$rw-$depth" --filename=/dev/$disk --direct=1 $engine --bs=4k --rw="$rw" \
      --iodepth="$depth" --numjobs="$jobs" --size="$bytes" --offset_increment="$bytes" \
      --cpus_allowed=0-$cpus --cpus_allowed_policy=split \
      --verify=crc32c --verify_fatal=1 --do_verify=1 --randrepeat=0 --group_reporting >/tmp/fio.out 2>&1; then
    cat /tmp/fio.out
    echo "rf: fio $rw iodepth $depth failed"
    exit 1
  fi
  grep -E "IOPS=|err=" /tmp/fio.out
  # Every block written and read back is at least one request each way.
  ios=$((bytes / 4096 * jobs * 2)); taken=$(($(irqs) - before))
  echo "rf: $taken interrupts for at least $ios requests"
  if [ "$mode" = hipri ]; then
    [ $((taken * 100)) -lt "$ios" ] || { echo "rf: polled I/O raised $taken interrupts for $ios requests"; exit 1; }
  fi
done
for q in /sys/block/$disk/mq/*; do echo "rf: queue ${q##*/} cpus $(cat "$q/cpu_list")"; done
exit 0
