# fio-json.sh ENGINE RW BS DEPTH RAMP RUNTIME: one fio job over the whole disk for `ringfence
# bench`'s Linux-guest rows, its JSON output between RF-FIO-JSON-BEGIN and RF-FIO-JSON-END.
# ENGINE: hipri (io_uring with IORING_SETUP_IOPOLL: rfblk's poll queue) or irq (io_uring,
# interrupts).
engine=$1 rw=$2 bs=$3 depth=$4 ramp=$5 runtime=$6
extra=""
[ "$engine" = hipri ] && extra="--hipri"
fio --name=bench --filename=/dev/$RF_DISK --direct=1 --ioengine=io_uring $extra --bs="$bs" --rw="$rw" \
    --iodepth="$depth" --time_based --runtime="$runtime" --ramp_time="$ramp" --norandommap --randrepeat=0 \
    --lat_percentiles=1 \
    --output-format=json >/tmp/bench.json 2>/tmp/bench.err || { cat /tmp/bench.err /tmp/bench.json; exit 1; }
echo "RF-FIO-JSON-BEGIN"
cat /tmp/bench.json
echo "RF-FIO-JSON-END"
exit 0
