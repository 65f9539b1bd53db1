#!/usr/bin/env bash
# Installs the Debian 12 packages ringfence builds, tests and benchmarks with.
# Idempotent: it asks dpkg what is missing, runs `apt-get update` only when something is,
# and says what it installs. The list matches the "Dependencies" section of DESIGN.md.
set -euo pipefail

packages=(
  build-essential      # g++ 12, make
  cmake                # build system
  ninja-build          # generator used by the README commands
  pkg-config           # finds libseccomp and liburing; the install test builds the C example with it
  liburing-dev         # io_uring headers (raw syscalls live in src/sys/)
  libseccomp-dev       # seccomp filter of the sandboxed guest process
  libgtest-dev         # GoogleTest
  libgmock-dev         # GoogleMock
  libbenchmark-dev     # google-benchmark micro-benchmarks
  fio                  # reference benchmark
  python3              # tests/qemu/qmp.py: drives QEMU (QMP) for the live-migration tests
  python3-six          # for fio_jsonplus_clat2csv, fio's json+ reader, which checks our JSON report
  libtomlplusplus-dev  # policy files
  nlohmann-json3-dev   # JSON reports
  libcli11-dev         # command-line parsing
  libfmt-dev           # formatting (g++ 12 has no std::format)
  gnuplot-nox          # benchmark charts
  clang-14             # libFuzzer builds (scripts/run-fuzzers.sh)
  libclang-rt-14-dev   # libFuzzer and the sanitizer runtimes for clang-14 (only recommended by clang-14)
  bindgen              # the C API's Rust bindings, as docs/integration.md generates them (CApiRust.Bindgen)
  rustc                # builds the Rust program that uses them
  # Real guests (`ringfence vhost-user-blk` under QEMU, tests/guest-linux):
  qemu-system-x86      # QEMU 7.2: the VMM that speaks vhost-user-blk (run with -accel tcg)
  qemu-system-common   # qemu-storage-daemon, the peer backend in the side-by-side bench
  linux-image-amd64    # the guest kernel and its virtio_blk module (its version is discovered, never named)
  linux-headers-amd64  # for guest modules built against that kernel
  busybox-static       # the guest initramfs's shell and tools
  cpio                 # packs the initramfs
  kmod                 # modinfo: finds the virtio modules' dependencies for the initramfs
  util-linux           # blkdiscard -z and fallocate -p for the guest's DISCARD/WRITE_ZEROES test (Essential; listed to be honest)
)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps: all ${#packages[@]} packages already installed"
  exit 0
fi

sudo=()
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null; then
    sudo=(sudo)
  else
    echo "install-deps: need root (or sudo) to install: ${missing[*]}" >&2
    exit 1
  fi
fi

echo "install-deps: installing ${#missing[@]} package(s): ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install-deps: done"
