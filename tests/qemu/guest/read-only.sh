# read-only.sh: the back-end serves the disk with --read-only, so the descriptor marks it
# read-only: the guest's block layer knows (blockdev --getro), reads work, and a write fails in
# the guest before it becomes an SQE.
disk=${RF_DISK:?}
[ "$(blockdev --getro /dev/$disk)" = 1 ] || { echo "rf: /dev/$disk is not read-only"; exit 1; }
dd if=/dev/$disk of=/dev/null bs=64k iflag=direct 2>/dev/null || { echo "rf: reading the read-only disk failed"; exit 1; }
if dd if=/dev/zero of=/dev/$disk bs=4k count=1 oflag=direct 2>/dev/null; then
  echo "rf: a write to the read-only disk succeeded"; exit 1
fi
echo "rf: read-only: reads pass, the write was refused"
exit 0
