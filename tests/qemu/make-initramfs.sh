#!/usr/bin/env bash
# Builds the initramfs the QEMU tests boot Debian's kernel with: busybox (static), Debian's fio
# and util-linux's blkdiscard and fallocate with every library they link, the virtio and ext4 modules of the installed linux-image-amd64 (its
# version is discovered, never named), and guest/init plus the guest-side scenarios.
#
#   make-initramfs.sh OUT_DIR
#
# Writes OUT_DIR/initramfs.cpio and OUT_DIR/vmlinuz (a link to the kernel it matches), and
# exits 77 with the reason when the kernel image, busybox, fio or util-linux is not installed. Rebuilds only
# when an input is newer than the archive.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: make-initramfs.sh OUT_DIR}
mkdir -p "$out"

# The newest installed Debian kernel that has its modules.
kernel=""
for k in $(ls -1 /boot/vmlinuz-* 2>/dev/null | sort -V -r); do
  v=${k#/boot/vmlinuz-}
  if [[ -d /lib/modules/$v/kernel ]]; then kernel=$k; version=$v; break; fi
done
if [[ -z "$kernel" ]]; then
  echo "skip: no /boot/vmlinuz-* with its modules (install linux-image-amd64: scripts/install-deps.sh)" >&2
  exit 77
fi
export PATH=$PATH:/usr/sbin:/sbin  # util-linux's blkdiscard
for tool in busybox fio blkdiscard fallocate; do
  if ! command -v $tool >/dev/null; then echo "skip: $tool is not installed (scripts/install-deps.sh)" >&2; exit 77; fi
done
if ! file -L "$(command -v busybox)" 2>/dev/null | grep -q "statically linked"; then
  : # `file` may be missing; busybox-static is what install-deps installs either way
fi

archive=$out/initramfs.cpio
binaries=(fio blkdiscard fallocate)
stamp_inputs=("$kernel" "$(command -v busybox)" $(for b in "${binaries[@]}"; do command -v "$b"; done) "$here/guest/init" "$here"/guest/*.sh "$0")
if [[ -f "$archive" ]]; then
  newer=0
  for f in "${stamp_inputs[@]}"; do [[ "$f" -nt "$archive" ]] && newer=1; done
  if [[ $newer -eq 0 && "$(readlink "$out/vmlinuz")" == "$kernel" ]]; then exit 0; fi
fi

root=$(mktemp -d "$out/root.XXXXXX")
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,sbin,dev,proc,sys,tmp,mnt,etc,lib/modules/"$version",scenarios}
cp "$(command -v busybox)" "$root/bin/busybox"
for applet in $("$root/bin/busybox" --list); do
  [[ -e "$root/bin/$applet" ]] || ln -s busybox "$root/bin/$applet"
done
# Where the kernel looks when it loads a module by itself (ext4's crc32c, say).
ln -s ../bin/busybox "$root/sbin/modprobe"

# fio in /bin, and util-linux's blkdiscard and fallocate (busybox's lack -z and -p) in /usr/bin
# (busybox's shell runs its own applet for a bare name, so scenarios call these by path), with
# their libraries at the paths the dynamic loader looks in.
mkdir -p "$root/usr/bin"
for binary in "${binaries[@]}"; do
  if [[ $binary == fio ]]; then dest=$root/bin/fio; else dest=$root/usr/bin/$binary; fi
  cp "$(command -v "$binary")" "$dest"
  while read -r lib; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done < <(ldd "$(command -v "$binary")" | awk '/=> \//{print $3} /^[ \t]*\/lib64\//{print $1}')
done

# The modules the scenarios load, with everything they depend on.
declare -A seen=()
add_module() {
  local name=$1
  [[ -n "${seen[$name]:-}" ]] && return
  seen[$name]=1
  local path
  path=$(modinfo -k "$version" -F filename "$name" 2>/dev/null) || { echo "make-initramfs: module $name not found" >&2; exit 1; }
  [[ "$path" == "(builtin)" || -z "$path" ]] && return
  mkdir -p "$root$(dirname "$path")"
  cp "$path" "$root$path"
  local deps
  deps=$(modinfo -k "$version" -F depends "$name")
  IFS=, read -ra list <<<"$deps"
  for d in "${list[@]}"; do [[ -n "$d" ]] && add_module "$d"; done
  # Soft dependencies that ext4 needs at mount time (the crc32c checksum).
  return 0
}
for m in virtio_pci virtio_blk ext4 crc32c_generic crc32c_intel; do add_module "$m"; done
cp /lib/modules/"$version"/modules.{order,builtin,builtin.modinfo} "$root/lib/modules/$version/" 2>/dev/null || true
depmod -b "$root" "$version"

cp "$here/guest/init" "$root/init"
chmod +x "$root/init"
cp "$here"/guest/*.sh "$root/scenarios/"

(cd "$root" && find . -print0 | cpio --null -o -H newc --quiet) >"$archive.tmp"
mv "$archive.tmp" "$archive"
ln -sfn "$kernel" "$out/vmlinuz"
