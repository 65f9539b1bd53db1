#!/usr/bin/env bash
# Boots Debian's kernel in QEMU (TCG) on a disk served by `ringfence vhost-user-blk` and runs a
# guest scenario (tests/qemu/guest/*.sh); passes when the guest prints "RF-RESULT: PASS" and the
# back-end, seen from the host, kept its promises: still running, nothing of a finished
# connection left behind (no guest-memory mapping, no thread, no fd), and once stopped, its
# loop device gone.
#
#   run-guest.sh --ringfence BIN --work DIR --scenario NAME [--args A,B,...] [--queues N] [--smp N]
#                [--mode passthrough|mediated] [--reboot] [--kill-qemu] [--then SCENARIO:ARGS]
#                [--rfblk KO|--rfblk-missing WHY] [--driver virtio_blk|rfblk] [--modparams P=V,...]
#                [--daemon-args "ARGS"] [--kill-daemon N] [--kill-both] [--migrate N]
#                [--kill-daemon-migrating]
#
#   --mode       the back-end's --mode (what a ringfence-aware guest could attach; a stock guest
#                runs the same virtio path in both)
#   --reboot     let the guest reboot (the device is reset and set up again on the same back-end)
#   --rfblk      rfblk.ko, put into the guest's initramfs (every test of a build passes the same)
#   --rfblk-missing  why rfblk.ko was not built: a test with --driver rfblk skips with it
#   --driver     the guest's block driver: the stock virtio_blk (default) or rfblk on the shared
#                rings, loaded with --modparams (e.g. poll_queues=1)
#   --daemon-args  more arguments for the back-end (e.g. its --hostile-completions test mode)
#   --kill-daemon  SIGKILL the back-end N times while the guest's fio runs, starting a new one on
#                the same socket each time: QEMU reconnects (reconnect=1), the new back-end resubmits
#                what the dead one had in flight (INFLIGHT_SHMFD), and the guest must pass with no
#                I/O error in its log. Prints each restart's time to the first completed request.
#   --migrate N  live-migrate the guest N times during the scenario (fio verify), each time to a
#                new QEMU (-incoming) on a new back-end (--incoming) on the same image, over a unix
#                socket (QMP migrate); the old QEMU quits and its back-end must let go of everything
#                and exit 0; the guest must pass on the last one with no I/O error. Prints each
#                migration's total time and downtime as QEMU reports them.
#   --kill-daemon-migrating  start a live migration during fio and SIGKILL the source's back-end
#                in the middle of it; whatever QEMU makes of that, once both QEMUs are killed nothing
#                is left on the host (no loop device on the image, the target back-end let go of
#                everything), and --then's guest runs on the target's back-end
#   --kill-both  SIGKILL the back-end during fio, then QEMU while it is reconnecting; check that
#                nothing of either is left on the host (no loop device on the image), then start a
#                new back-end and boot --then's scenario against it
#   --kill-qemu  SIGKILL QEMU once the guest prints "rf: fio running", check the back-end let go
#                of everything, then boot again with --then's scenario against the same back-end
#
# Exits 77 with the reason when QEMU, the kernel image, busybox or fio is missing (the install
# script installs them all).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

ringfence="" work="" scenario="" args="" queues=1 smp=1 mode=mediated reboot=0 kill_qemu=0 then=""
rfblk="" rfblk_missing="" driver=virtio_blk modparams="" daemon_args="" kill_daemon=0 kill_both=0 migrate=0 kill_migrating=0
while [[ $# -gt 0 ]]; do
  case $1 in
    --ringfence) ringfence=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --scenario) scenario=$2; shift 2 ;;
    --args) args=$2; shift 2 ;;
    --queues) queues=$2; shift 2 ;;
    --smp) smp=$2; shift 2 ;;
    --mode) mode=$2; shift 2 ;;
    --reboot) reboot=1; shift ;;
    --kill-qemu) kill_qemu=1; shift ;;
    --then) then=$2; shift 2 ;;
    --rfblk) rfblk=$2; shift 2 ;;
    --rfblk-missing) rfblk_missing=$2; shift 2 ;;
    --driver) driver=$2; shift 2 ;;
    --modparams) modparams=$2; shift 2 ;;
    --daemon-args) daemon_args=$2; shift 2 ;;
    --kill-daemon) kill_daemon=$2; shift 2 ;;
    --kill-both) kill_both=1; shift ;;
    --migrate) migrate=$2; shift 2 ;;
    --kill-daemon-migrating) kill_migrating=1; shift ;;
    *) echo "run-guest.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ -n "$ringfence" && -n "$work" && -n "$scenario" ]] || { echo "run-guest.sh: --ringfence, --work and --scenario are required" >&2; exit 2; }

if ! command -v qemu-system-x86_64 >/dev/null; then
  echo "skip: qemu-system-x86_64 is not installed (scripts/install-deps.sh installs qemu-system-x86)"
  exit 77
fi
if [[ $driver == rfblk && -z "$rfblk" ]]; then
  echo "skip: ${rfblk_missing:-rfblk.ko was not given}"
  exit 77
fi
# The initramfs is shared by every QEMU test of this build (make-initramfs.sh serialises its
# builders).
mkdir -p "$work"
shared=$(dirname "$work")/guest-image
rc=0
"$here/make-initramfs.sh" "$shared" "$rfblk" || rc=$?
[[ $rc -eq 77 ]] && exit 77
[[ $rc -ne 0 ]] && { echo "FAIL: building the guest initramfs failed ($rc)"; exit 1; }

run=$(mktemp -d "$work/run.XXXXXX")
# A unix socket's path holds at most 107 bytes, and a build tree (CI's, say) can be deep enough that
# $run is longer than that: the socket lives in a short directory of its own.
sockdir=$(mktemp -d /tmp/rf-vub.XXXXXX)
daemon_pid=""
qemu_pid=""
cleanup() {
  [[ -n "$qemu_pid" ]] && kill -9 "$qemu_pid" 2>/dev/null || true
  [[ -n "$daemon_pid" ]] && kill -9 "$daemon_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  # The logs stay for a look afterwards; the disk image and the socket do not.
  rm -rf "$work/last-run" && mkdir -p "$work/last-run" && cp "$run"/*.log "$work/last-run/" 2>/dev/null || true
  rm -rf "$run" "$sockdir"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*"
  echo "--- guest console (last 40 lines)"; tail -n 40 "$run"/console*.log 2>/dev/null || true
  echo "--- back-end log(s)"; cat "$run"/daemon*.log 2>/dev/null || true
  exit 1
}

image=$run/disk.img
truncate -s 32M "$image"
socket=$sockdir/vub.sock
start_daemon() {  # start_daemon [MORE ARGS]: the back-end, logging to $run/daemon.log (the ones before it: daemon-N.log)
  "$ringfence" vhost-user-blk --socket "$socket" --disk "$image" --queues "$queues" --mode "$mode" $daemon_args "$@" >"$run/daemon.log" 2>&1 &
  daemon_pid=$!
  for _ in $(seq 1 100); do [[ -S "$socket" ]] && break; sleep 0.1; done
  [[ -S "$socket" ]] || fail "the back-end did not create its socket"
}
start_daemon

# What the back-end holds with no front-end connected: its baseline.
fds() { ls "/proc/$daemon_pid/fd" | wc -l; }
threads() { awk '/^Threads:/{print $2}' "/proc/$daemon_pid/status"; }
guest_maps() { grep -c "memfd:" "/proc/$daemon_pid/maps" || true; }
base_fds=$(fds)
base_threads=$(threads)

reconnect=""
[[ $kill_daemon -gt 0 || $kill_both -eq 1 ]] && reconnect=",reconnect=1"  # QEMU retries the socket every second
boot() {  # boot CONSOLE SCENARIO ARGS [extra QEMU options]: starts QEMU in the background
  local console=$1 name=$2 scenario_args=$3
  shift 3
  qemu-system-x86_64 -accel tcg -m 512 -smp "$smp" -nographic -nodefaults -serial "file:$console" \
    -object memory-backend-memfd,id=mem,size=512M,share=on -numa node,memdev=mem \
    -chardev socket,id=vub0,path="$socket"$reconnect -device vhost-user-blk-pci,chardev=vub0,num-queues="$queues" \
    -kernel "$shared/vmlinuz" -initrd "$shared/initramfs.cpio" \
    -append "console=ttyS0 loglevel=5 panic=-1 rf.scenario=$name rf.args=$scenario_args rf.driver=$driver rf.modparams=$modparams" "$@" >"$console.qemu" 2>&1 &
  qemu_pid=$!
}
wait_qemu() {  # waits up to $1 seconds for QEMU to exit
  local deadline=$((SECONDS + $1))
  while kill -0 "$qemu_pid" 2>/dev/null; do
    if (( SECONDS >= deadline )); then
      # The back-end's view of its queues, for the diagnosis, before anything is torn down.
      kill -USR1 "$daemon_pid" 2>/dev/null || true
      sleep 1
      kill -9 "$qemu_pid"; wait "$qemu_pid" 2>/dev/null || true; qemu_pid=""
      fail "the guest did not finish in $1 s"
    fi
    sleep 0.5
  done
  wait "$qemu_pid" 2>/dev/null || true
  qemu_pid=""
}
expect_pass() {  # the console shows the scenario passed, and the guest kernel no warning
  grep -q "RF-RESULT: PASS" "$1" || fail "the guest did not pass: $(grep -a 'RF-RESULT' "$1" || echo 'no result line')"
  if grep -a -n -E "WARNING:|BUG:|possible (circular|recursive) locking|INFO: task .* blocked|Oops" "$1"; then
    fail "the guest kernel logged a warning or a bug (above)"
  fi
}
expect_no_io_error() {  # expect_no_io_error CONSOLE...: no I/O error, device failure, warning or bug in any
  if grep -a -n -E "I/O error|blk_update_request|critical medium error|device failed|WARNING:|BUG:|Oops" "$@"; then
    fail "the guest kernel logged an I/O error, a warning or a bug (above)"
  fi
}
expect_released() {  # after connection N closed: nothing of it is left in the back-end
  local n=$1
  for _ in $(seq 1 100); do grep -q "connection $n closed" "$run/daemon.log" && break; sleep 0.1; done
  grep -q "connection $n closed" "$run/daemon.log" || fail "the back-end never saw connection $n close"
  kill -0 "$daemon_pid" 2>/dev/null || fail "the back-end died"
  [[ $(guest_maps) -eq 0 ]] || fail "the back-end still maps guest memory after connection $n: $(grep memfd: /proc/$daemon_pid/maps)"
  [[ $(threads) -eq $base_threads ]] || fail "the back-end has $(threads) threads after connection $n, $base_threads before"
  [[ $(fds) -eq $base_fds ]] || fail "the back-end has $(fds) fds after connection $n, $base_fds before"
  echo "connection $n: released (no guest memory mapped, $(threads) threads, $(fds) fds, as before)"
}

reboot_flag=(-no-reboot)
[[ $reboot -eq 1 ]] && reboot_flag=()
qmp=""
if [[ $migrate -gt 0 || $kill_migrating -eq 1 ]]; then
  qmp=$sockdir/qmp-0.sock
  reboot_flag+=(-qmp "unix:$qmp,server=on,wait=off")
fi
boot "$run/console1.log" "$scenario" "$args" "${reboot_flag[@]}"
connection=1
start_migration() {  # start_migration N: a target back-end and QEMU, and QMP migrate from the running QEMU
  local n=$1
  old_qemu=$qemu_pid old_qmp=$qmp old_daemon=$daemon_pid
  mv "$run/daemon.log" "$run/daemon-$n.log"  # the old back-end goes on writing to it
  # The target: a back-end on a socket of its own that opens the disk only when QEMU starts the
  # queues there (--incoming), and a QEMU waiting for the guest.
  socket=$sockdir/vub-$n.sock
  start_daemon --incoming
  qmp=$sockdir/qmp-$n.sock
  boot "$run/console$((n + 1)).log" "$scenario" "$args" -no-reboot -incoming "unix:$sockdir/migrate-$n.sock" \
    -qmp "unix:$qmp,server=on,wait=off"
  for _ in $(seq 1 100); do [[ -S $qmp && -S $sockdir/migrate-$n.sock ]] && break; sleep 0.1; done
  "$here/qmp.py" "$old_qmp" migrate "{\"uri\": \"unix:$sockdir/migrate-$n.sock\"}" >/dev/null ||
    fail "QEMU refused migration $n"
}
wait_migration() {  # wait_migration N: until QEMU says migration N ended (up to 2 min); its query-migrate in $status
  status=""
  for _ in $(seq 1 600); do
    status=$("$here/qmp.py" "$old_qmp" query-migrate) || fail "query-migrate failed during migration $1"
    [[ $status == *'"status": "completed"'* || $status == *'"status": "failed"'* || $status == *'"status": "cancelled"'* ]] && return
    sleep 0.2
  done
}
wait_console() {  # wait_console TEXT: up to 60 s for the first guest's console to show TEXT
  for _ in $(seq 1 600); do grep -q "$1" "$run/console1.log" 2>/dev/null && break; sleep 0.1; done
  grep -q "$1" "$run/console1.log" || fail "the guest never printed '$1'"
}
kill_qemu_now() {
  kill -9 "$qemu_pid"
  wait "$qemu_pid" 2>/dev/null || true
  qemu_pid=""
}
boot_then() {  # boot_then [CONSOLE]: the next guest, with --then's scenario, which must pass
  local console=${1:-$run/console2.log}
  [[ -n "$then" ]] || fail "this test needs --then SCENARIO:ARGS"
  boot "$console" "${then%%:*}" "${then#*:}" -no-reboot
  wait_qemu 300
  expect_pass "$console"
}
if [[ $kill_qemu -eq 1 ]]; then
  wait_console "rf: fio running"
  sleep 3
  kill_qemu_now
  echo "QEMU killed with SIGKILL during fio"
  expect_released 1
  connection=2
  boot_then
elif [[ $kill_both -eq 1 ]]; then
  wait_console "rf: fio running"
  sleep 2
  kill -9 "$daemon_pid"
  wait "$daemon_pid" 2>/dev/null || true
  mv "$run/daemon.log" "$run/daemon-1.log"
  sleep 0.5  # QEMU is now retrying the socket every second
  kill_qemu_now
  echo "the back-end, then QEMU while reconnecting, killed with SIGKILL during fio"
  # The dead back-end's loop device goes once the kernel has finished its last request.
  for _ in $(seq 1 50); do [[ -z "$(losetup -j "$image")" ]] && break; sleep 0.1; done
  [[ -z "$(losetup -j "$image")" ]] || fail "a loop device still holds the image after both died: $(losetup -j "$image")"
  start_daemon  # over the dead one's stale socket file, which it replaces
  boot_then
elif [[ $migrate -gt 0 ]]; then
  wait_console "rf: fio "
  for n in $(seq 1 "$migrate"); do
    sleep 2  # some of fio's I/O on this side
    kill -0 "$qemu_pid" 2>/dev/null || fail "the guest finished before migration $n; give fio more to do"
    start_migration "$n"
    wait_migration "$n"
    [[ $status == *'"status": "completed"'* ]] || fail "migration $n did not complete: $status"
    total=$(grep -o '"total-time": [0-9]*' <<<"$status" | grep -o '[0-9]*$')
    downtime=$(grep -o '"downtime": [0-9]*' <<<"$status" | grep -o '[0-9]*$')
    echo "migration $n: completed in $total ms, downtime $downtime ms (QEMU's query-migrate)"
    "$here/qmp.py" "$old_qmp" quit >/dev/null 2>&1 || true
    wait "$old_qemu" 2>/dev/null || true
    # The source's back-end: its connection ends with the old QEMU, and stopped, it exits 0.
    for _ in $(seq 1 100); do grep -q "connection 1 closed" "$run/daemon-$n.log" && break; sleep 0.1; done
    grep -q "connection 1 closed" "$run/daemon-$n.log" || fail "migration $n's source back-end never saw its QEMU go"
    logged=$(grep -o "[0-9]* pages logged" "$run/daemon-$n.log" | tail -n 1 | cut -d' ' -f1)
    [[ ${logged:-0} -gt 0 ]] || fail "migration $n's source back-end logged no page for QEMU (LOG_ALL never took effect)"
    echo "  its source back-end logged $logged page marks for QEMU"
    kill -TERM "$old_daemon"
    rc=0
    wait "$old_daemon" || rc=$?
    [[ $rc -eq 0 ]] || fail "migration $n's source back-end exited $rc after SIGTERM"
  done
  wait_qemu 300
  expect_pass "$run/console$((migrate + 1)).log"
  expect_no_io_error "$run"/console*.log
elif [[ $kill_migrating -eq 1 ]]; then
  wait_console "rf: fio "
  sleep 2
  start_migration 1
  sleep 0.5
  kill -9 "$old_daemon"
  wait "$old_daemon" 2>/dev/null || true
  wait_migration 1
  echo "the source's back-end killed with SIGKILL half a second into the migration; QEMU's migration: $(grep -o '"status": "[a-z-]*"' <<<"$status")"
  kill_qemu_now
  kill -9 "$old_qemu" 2>/dev/null || true
  wait "$old_qemu" 2>/dev/null || true
  # The target back-end let go of everything (if QEMU started the guest there), and the dead
  # back-end's loop device is gone once the kernel finished its last request.
  if grep -q "front-end connected" "$run/daemon.log"; then expect_released 1; fi
  for _ in $(seq 1 50); do [[ -z "$(losetup -j "$image")" ]] && break; sleep 0.1; done
  [[ -z "$(losetup -j "$image")" ]] || fail "a loop device still holds the image after both QEMUs went: $(losetup -j "$image")"
  connection=2
  grep -q "front-end connected" "$run/daemon.log" || connection=1
  boot_then "$run/console3.log"
elif [[ $kill_daemon -gt 0 ]]; then
  wait_console "rf: fio "
  for k in $(seq 1 "$kill_daemon"); do
    sleep 2  # some of fio's I/O on this back-end
    kill -0 "$qemu_pid" 2>/dev/null || fail "the guest finished before the back-end was killed $k time(s); give fio more to do"
    kill -9 "$daemon_pid"
    wait "$daemon_pid" 2>/dev/null || true
    mv "$run/daemon.log" "$run/daemon-$k.log"
    started=$(date +%s%N)
    start_daemon
    for _ in $(seq 1 300); do grep -q "first request completed" "$run/daemon.log" && break; sleep 0.1; done
    grep -q "first request completed" "$run/daemon.log" || fail "the guest's I/O did not resume within 30 s of back-end $((k + 1))'s start"
    echo "back-end killed with SIGKILL ($k of $kill_daemon); a new one completed a request $(( ($(date +%s%N) - started) / 1000000 )) ms after it was started"
    grep -h -E "resubmit|first request" "$run/daemon.log" | sed 's/^/  back-end: /'
  done
  wait_qemu 300
  expect_pass "$run/console1.log"
  expect_no_io_error "$run/console1.log"
  if [[ $driver == rfblk ]]; then
    # Each restart ends every ring's NOTIFY, and rfblk attaches each ring again, once.
    again=$(grep -a -c "attached again (" "$run/console1.log" || true)
    [[ $again -eq $((kill_daemon * queues)) ]] ||
      fail "rfblk attached its rings again $again times; $kill_daemon restarts of $queues rings make $((kill_daemon * queues))"
    echo "rfblk attached each of its $queues rings again after each restart ($again in all)"
    grep -a -o "queue [0-9]* attached again.*" "$run/console1.log" | sed 's/^/  guest: /'
  fi
else
  wait_qemu 300
  expect_pass "$run/console1.log"
  if [[ $reboot -eq 1 ]]; then
    grep -q "rf: rebooting" "$run/console1.log" || fail "the guest never rebooted"
  fi
fi
grep -h -a -E "^rf: |IOPS=" "$run"/console*.log | sed 's/^/guest: /' || true
expect_released $connection
if [[ $queues -gt 1 ]]; then
  # Every queue carried requests: blk-mq spread them as the guest's CPUs ran.
  per_queue=$(grep -o "per queue: [0-9 ]*" "$run/daemon.log" | tail -n 1 | cut -d: -f2)
  for n in $per_queue; do [[ $n -gt 0 ]] || fail "a queue carried no request (per queue:$per_queue)"; done
  echo "requests per queue:$per_queue"
fi

# Stopped, the back-end exits 0 and its loop device goes with it.
kill -TERM "$daemon_pid"
rc=0
wait "$daemon_pid" || rc=$?
daemon_pid=""
[[ $rc -eq 0 ]] || fail "the back-end exited $rc after SIGTERM"
[[ ! -e "$socket" ]] || fail "the back-end left its socket behind"
[[ -z "$(losetup -j "$image")" ]] || fail "a loop device still holds the image: $(losetup -j "$image")"
tail -n 3 "$run/daemon.log"
echo "PASS"
