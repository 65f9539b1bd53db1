#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan + libFuzzer, in build-fuzz/) and runs
# each one for SECONDS (default 60), starting from its seed corpus in tests/fuzzers/corpus.
#
#   scripts/run-fuzzers.sh [SECONDS] [TARGET...]
#
# New inputs that reach new code go to build-fuzz/corpus/<target>/, never into the repository.
# A finding stops that target: libFuzzer prints the broken invariant and saves the input as
# build-fuzz/findings/<target>/crash-<sha1>, which `build/tests/fuzzers/fuzz_<target> FILE`
# (the GCC replay build) or `build-fuzz/tests/fuzzers/fuzz_<target> FILE` runs again. The
# script exits non-zero if any target found something.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
shift || true
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then targets=(policy_parser guest_memory sqe_validator mediator_ring virtqueue); fi
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [[ "$seconds" -eq 0 ]]; then
  echo "run-fuzzers: SECONDS must be a whole number above 0 (got '$seconds')" >&2
  exit 2
fi
for tool in clang-14 clang++-14; do
  if ! command -v "$tool" >/dev/null; then
    echo "run-fuzzers: $tool is missing; scripts/install-deps.sh installs it (clang-14, libclang-rt-14-dev)" >&2
    exit 2
  fi
done

CC=clang-14 CXX=clang++-14 cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRF_FUZZERS=ON \
  -DRF_SANITIZE=address,undefined -DRF_BUILD_TESTS=OFF -DRF_BUILD_BENCH=OFF >/dev/null
cmake --build build-fuzz --target fuzzers

status=0
for target in "${targets[@]}"; do
  exe=build-fuzz/tests/fuzzers/fuzz_$target
  seeds=tests/fuzzers/corpus/$target
  if [[ ! -x "$exe" || ! -d "$seeds" ]]; then
    echo "run-fuzzers: no target '$target' (the targets are: policy_parser guest_memory sqe_validator mediator_ring virtqueue)" >&2
    exit 2
  fi
  mkdir -p "build-fuzz/corpus/$target" "build-fuzz/findings/$target"
  echo "+ fuzz_$target for ${seconds}s"
  set +e
  # -rss_limit_mb: a target that grows is a finding too. -timeout: one input taking 10 s is a hang.
  "$exe" "build-fuzz/corpus/$target" "$seeds" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -error_exitcode=1 \
    -print_final_stats=1 -artifact_prefix="build-fuzz/findings/$target/" 2>"build-fuzz/fuzz_$target.log"
  rc=$?
  set -e
  grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+ +DONE)' "build-fuzz/fuzz_$target.log" || true
  if [[ $rc -eq 77 ]]; then
    echo "fuzz_$target: skipped: $(grep -m1 'cannot' "build-fuzz/fuzz_$target.log")"
  elif [[ $rc -ne 0 ]]; then
    echo "fuzz_$target: FOUND A PROBLEM (exit $rc); the log is build-fuzz/fuzz_$target.log:" >&2
    grep -E 'fuzz invariant broken|ERROR: |SUMMARY: |Test unit written' "build-fuzz/fuzz_$target.log" >&2 || true
    status=1
  fi
done
exit $status
