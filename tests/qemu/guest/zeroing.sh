# zeroing.sh: DISCARD and WRITE_ZEROES from a stock Linux guest. The driver must have negotiated
# both (the block layer's queue limits show it). 8 MiB of random data go to /dev/$RF_DISK; then three
# ranges are zeroed three ways: blkdiscard (DISCARD), blkdiscard -z (WRITE_ZEROES), fallocate -p
# (WRITE_ZEROES with the unmap flag). Read back with direct I/O, the disk must hold zeros exactly
# there and the data everywhere else; and the limits must still be set (a device that answered
# UNSUPP would have had the guest turn the feature off and write zero pages instead).
# util-linux's tools by path: busybox's shell would run its own applets of the same names.
blkdiscard=/usr/bin/blkdiscard fallocate=/usr/bin/fallocate
set -e
limits() { echo "$(cat /sys/block/$RF_DISK/queue/discard_max_bytes) $(cat /sys/block/$RF_DISK/queue/write_zeroes_max_bytes)"; }
set -- $(limits)
echo "rf: discard_max_bytes $1, write_zeroes_max_bytes $2"
if [ "$1" -eq 0 ] || [ "$2" -eq 0 ]; then echo "rf: DISCARD and WRITE_ZEROES were not both negotiated"; exit 1; fi

dd if=/dev/urandom of=/tmp/expected bs=1M count=8 2>/dev/null
dd if=/tmp/expected of=/dev/$RF_DISK bs=1M oflag=direct 2>/dev/null
zero() {  # zero OFFSET LENGTH, in /tmp/expected
  dd if=/dev/zero of=/tmp/expected bs=4096 seek=$(($1 / 4096)) count=$(($2 / 4096)) conv=notrunc 2>/dev/null
}
$blkdiscard -o $((1 << 20)) -l $((1 << 20)) /dev/$RF_DISK
zero $((1 << 20)) $((1 << 20))
$blkdiscard -z -o $((3 << 20)) -l $((512 << 10)) /dev/$RF_DISK
zero $((3 << 20)) $((512 << 10))
$fallocate -p -o $((5 << 20)) -l $((1040 << 10)) /dev/$RF_DISK
zero $((5 << 20)) $((1040 << 10))
echo "rf: zeroed three ranges"

dd if=/dev/$RF_DISK of=/tmp/on-disk bs=1M count=8 iflag=direct 2>/dev/null
if ! cmp /tmp/expected /tmp/on-disk; then echo "rf: the disk does not hold what was written and zeroed"; exit 1; fi
set -- $(limits)
if [ "$1" -eq 0 ] || [ "$2" -eq 0 ]; then echo "rf: the guest turned DISCARD or WRITE_ZEROES off ($1 $2)"; exit 1; fi
echo "rf: zeros exactly where asked, the data everywhere else"
