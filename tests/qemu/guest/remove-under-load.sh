# remove-under-load.sh: with fio writing through an interrupt queue and a polled one, rfblk is
# first refused unloading (the disk is open), then its device is unbound under the load (the
# driver's remove: every request in flight completes or fails, the rings are let go); fio ends,
# rfblk unloads, loads again, attaches again, and a verified write and read-back pass.
disk=${RF_DISK:?}
device=$(basename "$(readlink /sys/block/$disk/device)")
fio --name=irq --filename=/dev/$disk --direct=1 --ioengine=libaio --bs=4k --rw=randwrite --iodepth=32 \
    --time_based --runtime=120 --size=16M \
    --name=polled --filename=/dev/$disk --direct=1 --ioengine=io_uring --hipri --bs=4k --rw=randwrite \
    --iodepth=8 --time_based --runtime=120 --offset=16M --size=16M >/tmp/fio.out 2>&1 &
fio_pid=$!
sleep 3
kill -0 $fio_pid 2>/dev/null || { cat /tmp/fio.out; echo "rf: fio did not keep running"; exit 1; }
if rmmod rfblk 2>/dev/null; then echo "rf: rmmod succeeded while the disk was open"; exit 1; fi
echo "rf: rmmod refused while fio runs; unbinding $device under load"
echo "$device" >/sys/bus/virtio/drivers/rfblk/unbind || { echo "rf: unbind failed"; exit 1; }
wait $fio_pid
echo "rf: fio ended after the removal ($(grep -c -i error /tmp/fio.out) error lines)"
[ ! -e /dev/$disk ] || { echo "rf: /dev/$disk is still there"; exit 1; }
rmmod rfblk || { echo "rf: rmmod after the removal failed"; exit 1; }
modprobe rfblk $RF_MODPARAMS || exit 1
for i in $(seq 1 100); do [ -b /dev/$disk ] && break; sleep 0.1; done
[ -b /dev/$disk ] || { echo "rf: rfblk did not attach again"; exit 1; }
echo "rf: loaded again; verifying"
fio --name=again --filename=/dev/$disk --direct=1 --ioengine=libaio --bs=4k --rw=randwrite --iodepth=16 \
    --size=8M --verify=crc32c --verify_fatal=1 --do_verify=1 >/tmp/fio2.out 2>&1 || { cat /tmp/fio2.out; exit 1; }
grep -E "IOPS=" /tmp/fio2.out
exit 0
