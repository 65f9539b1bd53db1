# fio-bench.sh SECONDS DEPTH...: 4 KiB random reads over the whole of /dev/$RF_DISK (O_DIRECT,
# libaio), SECONDS at each iodepth after a 1 s ramp, one line per depth:
#   rf-bench: iodepth D iops N
secs=$1; shift
for depth in "$@"; do
  fio --name=bench --filename=/dev/$RF_DISK --direct=1 --ioengine=libaio --bs=4k --rw=randread --iodepth="$depth" \
      --time_based --runtime="$secs" --ramp_time=1 --norandommap --randrepeat=0 \
      --output-format=terse --terse-version=3 >/tmp/bench.out 2>&1 || { cat /tmp/bench.out; exit 1; }
  # Terse v3: field 8 is the read IOPS.
  echo "rf-bench: iodepth $depth iops $(cut -d';' -f8 /tmp/bench.out)"
done
exit 0
