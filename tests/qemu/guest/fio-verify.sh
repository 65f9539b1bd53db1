# fio-verify.sh JOBS RW:DEPTH...: for each RW:DEPTH (RW = randwrite or randrw), writes the whole
# of /dev/vda with crc32c-checksummed 4 KiB blocks and reads every one back (randwrite), or runs
# a random read/write mix whose writes are checked when read back (randrw), at that iodepth.
# JOBS fio jobs split the disk between them, one per CPU, so that with -smp 2 and two queues
# both queues carry I/O.
jobs=$1; shift
size=$(cat /sys/block/vda/size)
bytes=$((size * 512 / jobs / 4096 * 4096))
cpus=$(($(nproc) - 1))
for run in "$@"; do
  rw=${run%%:*}; depth=${run##*:}
  echo "rf: fio $rw iodepth $depth, $jobs job(s) of $bytes bytes"
  if ! fio --name="$rw-$depth" --filename=/dev/vda --direct=1 --ioengine=libaio --bs=4k --rw="$rw" \
      --iodepth="$depth" --numjobs="$jobs" --size="$bytes" --offset_increment="$bytes" \
      --cpus_allowed=0-$cpus --cpus_allowed_policy=split \
      --verify=crc32c --verify_fatal=1 --do_verify=1 --randrepeat=0 --group_reporting >/tmp/fio.out 2>&1; then
    cat /tmp/fio.out
    echo "rf: fio $rw iodepth $depth failed"
    exit 1
  fi
  grep -E "IOPS=|err=" /tmp/fio.out
done
for q in /sys/block/vda/mq/*; do echo "rf: queue ${q##*/} cpus $(cat "$q/cpu_list")"; done
exit 0
