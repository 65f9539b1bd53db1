#!/usr/bin/env bash
# Generates Rust bindings for include/ringfence.h with the bindgen command line (the same options
# as docs/integration.md's build.rs), builds bindings_check.rs against libringfence.so and runs it.
# usage: check-bindings.sh HEADER LIBRARY_DIR WORK_DIR
set -euo pipefail
header=$1 libdir=$2 work=$3
here=$(cd "$(dirname "$0")" && pwd)
for tool in bindgen rustc; do
  command -v "$tool" >/dev/null || { echo "check-bindings: $tool is missing: run scripts/install-deps.sh" >&2; exit 1; }
done
mkdir -p "$work"
bindgen "$header" \
  --allowlist-function 'rf_.*' --allowlist-type 'rf_.*' --allowlist-var '(RF|RINGFENCE)_.*' \
  --newtype-enum 'rf_status|rf_mode|rf_device_state|rf_memory_backing|rf_broken_reason' \
  -o "$work/ringfence.rs"
if grep -q 'RF_COUNT_UNKNOWN' "$work/ringfence.rs"; then
  echo "check-bindings: bindgen now emits RF_COUNT_UNKNOWN as: $(grep RF_COUNT_UNKNOWN "$work/ringfence.rs"); check its type and update docs/integration.md" >&2
  exit 1
fi
RF_BINDINGS="$work/ringfence.rs" rustc --edition 2021 -O -o "$work/bindings_check" \
  -L "native=$libdir" -l dylib=ringfence -C "link-arg=-Wl,-rpath,$libdir" "$here/bindings_check.rs"
"$work/bindings_check"
