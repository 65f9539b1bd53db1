# fs-reboot.sh: first boot: makes an ext2 file system on /dev/$RF_DISK (mounted by the ext4 driver),
# writes files, records their checksums on the disk, syncs and reboots the guest (QEMU resets
# the vhost-user-blk device, the back-end keeps running). Second boot: mounts it again and
# checks every file against the recorded checksums.
modprobe crc32c_generic; modprobe ext4 || exit 1
mkdir -p /mnt/disk
if mount -t ext4 /dev/$RF_DISK /mnt/disk 2>/dev/null && [ -f /mnt/disk/SUMS ]; then
  echo "rf: second boot: checking the files"
  (cd /mnt/disk && md5sum -c SUMS) || exit 1
  [ "$(wc -l < /mnt/disk/SUMS)" -eq 20 ] || { echo "rf: files are missing"; exit 1; }
  umount /mnt/disk
  exit 0
fi
echo "rf: first boot: mkfs, files, sync, reboot"
mke2fs -q /dev/$RF_DISK || exit 1
mount -t ext4 /dev/$RF_DISK /mnt/disk || exit 1
for i in $(seq 1 20); do
  dd if=/dev/urandom of=/mnt/disk/file$i bs=1k count=$((i * 37)) 2>/dev/null || exit 1
done
(cd /mnt/disk && md5sum file* > SUMS) || exit 1
umount /mnt/disk || exit 1
sync
echo "rf: rebooting"
reboot -f
sleep 30
exit 1
