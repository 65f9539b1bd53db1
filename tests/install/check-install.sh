#!/usr/bin/env bash
# The install check (CTest: CExample.InstalledTree). Installs the build tree into a temporary
# prefix, moves the prefix (the package files must be relocatable), then builds the C example
# against it as a VMM's build would (pkg-config with cc; CMake with find_package, linking the
# shared and then the static library) and runs each build in both modes.
#   check-install.sh BUILD_DIR EXAMPLE_DIR
set -euo pipefail
build=$1
example=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/ringfence-install.XXXXXX")
trap 'rm -rf "$work"' EXIT

step() { echo "== $*"; }

step "cmake --install into a temporary prefix, then move it"
cmake --install "$build" --prefix "$work/staged" >"$work/install.log"
mv "$work/staged" "$work/prefix"
prefix=$work/prefix
pc=$(find "$prefix" -name ringfence.pc -print -quit)
config=$(find "$prefix" -name ringfenceConfig.cmake -print -quit)
[[ -n "$pc" && -n "$config" ]] || { echo "no ringfence.pc or ringfenceConfig.cmake under $prefix" >&2; exit 1; }
libdir=$(dirname "$(dirname "$pc")")
for f in include/ringfence.h bin/ringfence bin/ringfence-guest share/ringfence/ringfence-kvm-guest.bin share/ringfence/policies/blk-passthrough.toml \
         share/ringfence/policies/blk-passthrough-ro.toml share/ringfence/policies/blk-mediated.toml; do
  [[ -e "$prefix/$f" ]] || { echo "not installed: $f" >&2; exit 1; }
done
for f in libringfence.so libringfence.a; do
  [[ -e "$libdir/$f" ]] || { echo "not installed: $libdir/$f" >&2; exit 1; }
done
"$prefix/bin/ringfence" --version

step "pkg-config: cc against the shared library"
export PKG_CONFIG_PATH=$(dirname "$pc")
version=$(pkg-config --modversion ringfence)
echo "pkg-config finds ringfence $version; cflags: $(pkg-config --cflags ringfence); libs: $(pkg-config --libs ringfence)"
# The header alone, as strict C99 (bindgen and older C VMMs see it this way).
printf '#include <ringfence.h>\nint main(void) { return rf_abi_version() == RINGFENCE_ABI_VERSION ? 0 : 1; }\n' |
  cc -std=c99 -pedantic -Wall -Wextra -Werror -fsyntax-only $(pkg-config --cflags ringfence) -x c -
cc -std=gnu11 -Wall -Wextra -Werror -o "$work/vmm_example_pkgconfig" "$example/vmm_example.c" \
   $(pkg-config --cflags --libs ringfence)
LD_LIBRARY_PATH=$libdir "$work/vmm_example_pkgconfig"

for linkage in shared static; do
  step "CMake: find_package(ringfence), $linkage library"
  static=OFF
  [[ $linkage == static ]] && static=ON
  cmake -S "$example" -B "$work/cmake-$linkage" -DCMAKE_PREFIX_PATH="$prefix" -DRINGFENCE_STATIC=$static \
        -DCMAKE_C_FLAGS=-Werror >"$work/cmake-$linkage.log" || { cat "$work/cmake-$linkage.log"; exit 1; }
  cmake --build "$work/cmake-$linkage" >>"$work/cmake-$linkage.log" || { cat "$work/cmake-$linkage.log"; exit 1; }
  binary=$work/cmake-$linkage/vmm_example
  libraries=$(ldd "$binary")  # captured: `ldd | grep -q` can fail on SIGPIPE under pipefail
  if [[ $linkage == static ]]; then
    if [[ $libraries == *libringfence* ]]; then echo "the static build loads libringfence.so: $libraries" >&2; exit 1; fi
  else
    [[ $libraries == *"libringfence.so.1 => $libdir/"* ]] || { echo "not linked to the installed library: $libraries" >&2; exit 1; }
  fi
  "$binary"
done
step "the C example built and ran against the installed tree: pkg-config, CMake shared, CMake static"
