# hostile.sh REASON: the back-end runs with --hostile-completions, so after its honest
# completions one ring posts a bogus CQE. rfblk must fail the device, never the guest kernel:
# fio ends with I/O errors, the kernel logs the failure once with REASON in it, later I/O on
# the disk fails at once, the rest of the guest runs on, and the broken device can still be
# unbound and the module unloaded.
reason=$(echo "$1" | tr _ ' ')
disk=${RF_DISK:?}
echo "rf: reading the whole disk while the device turns hostile"
if fio --name=hostile --filename=/dev/$disk --direct=1 --ioengine=libaio --bs=4k --rw=randread --iodepth=8 \
    >/tmp/fio.out 2>&1; then
  cat /tmp/fio.out; echo "rf: fio saw no error from a hostile device"; exit 1
fi
grep -E "err=|error" /tmp/fio.out | head -n 3
dmesg | grep "device failed" | sed 's/^/rf: dmesg: /'
[ "$(dmesg | grep -c "device failed")" -eq 1 ] || { echo "rf: expected exactly one 'device failed' line"; exit 1; }
dmesg | grep "device failed" | grep -q "$reason" || { echo "rf: the failure does not say '$reason'"; exit 1; }
if dd if=/dev/$disk of=/dev/null bs=4k count=1 iflag=direct 2>/dev/null; then
  echo "rf: a read of the failed device succeeded"; exit 1
fi
echo alive >/tmp/alive && [ "$(cat /tmp/alive)" = alive ] || exit 1
device=$(basename "$(readlink /sys/block/$disk/device)")
echo "$device" >/sys/bus/virtio/drivers/rfblk/unbind || { echo "rf: unbinding $device failed"; exit 1; }
rmmod rfblk || { echo "rf: rmmod after the failure failed"; exit 1; }
echo "rf: the device failed alone; the guest runs on, $device unbound, rfblk unloaded"
exit 0
