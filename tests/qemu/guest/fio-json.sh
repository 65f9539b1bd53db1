# fio-json.sh ENGINE RW BS DEPTH RAMP_MS RUNTIME_MS: one fio job over the whole disk for
# `ringfence bench`'s Linux-guest rows: RAMP_MS milliseconds of warm-up, then "RF-FIO-MEASURE",
# the measured RUNTIME_MS milliseconds, and its JSON output between RF-FIO-JSON-BEGIN and RF-FIO-JSON-END (the host samples
# the back-end's and QEMU's CPU time at the two markers).
# ENGINE: hipri (io_uring with IORING_SETUP_IOPOLL: rfblk's poll queue) or irq (io_uring,
# interrupts).
engine=$1 rw=$2 bs=$3 depth=$4 ramp=$5 runtime=$6
extra=""
[ "$engine" = hipri ] && extra="--hipri"
job() {  # job MILLISECONDS: the same fio job, its JSON in /tmp/bench.json
  fio --name=bench --filename=/dev/$RF_DISK --direct=1 --ioengine=io_uring $extra --bs="$bs" --rw="$rw" \
      --iodepth="$depth" --time_based --runtime="${1}ms" --norandommap --randrepeat=0 --lat_percentiles=1 \
      --output-format=json >/tmp/bench.json 2>/tmp/bench.err || { cat /tmp/bench.err /tmp/bench.json; exit 1; }
}
[ "$ramp" -gt 0 ] && job "$ramp"
echo "RF-FIO-MEASURE"
job "$runtime"
echo "RF-FIO-JSON-BEGIN"
cat /tmp/bench.json
echo "RF-FIO-JSON-END"
exit 0
