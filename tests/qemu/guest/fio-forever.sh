# fio-forever.sh: random writes at iodepth 32 until the host kills the VM.
echo "rf: fio running"
fio --name=forever --filename=/dev/$RF_DISK --direct=1 --ioengine=libaio --bs=4k --rw=randwrite --iodepth=32 \
    --time_based --runtime=600 >/dev/null 2>&1
exit 1
