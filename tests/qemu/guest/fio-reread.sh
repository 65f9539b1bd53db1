# fio-reread.sh ROUNDS DEPTH: writes the whole disk (/dev/$RF_DISK) once with crc32c-checksummed
# 4 KiB blocks, then reads every block back and checks it ROUNDS times, at iodepth DEPTH. Nearly
# all of its time is reads whose data the device writes into guest RAM and fio checks: the
# workload a live migration must not lose a page of (tests/qemu/run-guest.sh --migrate).
disk=${RF_DISK:-vda}
rounds=$1 depth=$2
bytes=$(($(cat /sys/block/$disk/size) * 512))
common="--name=reread --filename=/dev/$disk --direct=1 --ioengine=libaio --bs=4k --rw=randwrite --iodepth=$depth
        --size=$bytes --verify=crc32c --verify_fatal=1 --randrepeat=1 --randseed=7"
echo "rf: fio writing $bytes bytes"
fio $common --do_verify=0 >/tmp/fio.out 2>&1 || { cat /tmp/fio.out; echo "rf: fio's write failed"; exit 1; }
for round in $(seq 1 "$rounds"); do
  echo "rf: fio reading back, round $round of $rounds"
  if ! fio $common --verify_only=1 >/tmp/fio.out 2>&1; then
    cat /tmp/fio.out
    echo "rf: fio found a block that is not what was written (round $round)"
    exit 1
  fi
  grep -E "verify|IOPS=" /tmp/fio.out | head -2
done
exit 0
