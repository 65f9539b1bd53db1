#!/usr/bin/env bash
# Builds the initramfs the QEMU tests boot Debian's kernel with: busybox (static), Debian's fio
# and util-linux's blkdiscard and fallocate with every library they link, the virtio and ext4
# modules of the installed linux-image-amd64 (its version is discovered by
# scripts/guest-kernel.sh, never named), rfblk.ko when it is given, and guest/init plus the
# guest-side scenarios.
#
#   make-initramfs.sh OUT_DIR [RFBLK_KO]
#
# Writes OUT_DIR/initramfs.cpio and OUT_DIR/vmlinuz (a link to the kernel it matches), and
# exits 77 with the reason when the kernel image, busybox, fio or util-linux is not installed. Rebuilds only
# when an input is newer than the archive.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: make-initramfs.sh OUT_DIR [RFBLK_KO]}
rfblk=${2:-}
mkdir -p "$out"
# Every QEMU test of a build, the bench's guest-image target and the bench script may build the
# same directory at once: one builder at a time, the others then find it up to date.
exec 9>"$out/.lock"
flock 9

if ! version=$("$here/../../scripts/guest-kernel.sh" 2>"$out/.why"); then
  echo "skip: $(cat "$out/.why")" >&2
  exit 77
fi
rm -f "$out/.why"
kernel=/boot/vmlinuz-$version
export PATH=$PATH:/usr/sbin:/sbin  # util-linux's blkdiscard
for tool in busybox fio blkdiscard fallocate; do
  if ! command -v $tool >/dev/null; then echo "skip: $tool is not installed (scripts/install-deps.sh)" >&2; exit 77; fi
done
if ! file -L "$(command -v busybox)" 2>/dev/null | grep -q "statically linked"; then
  : # `file` may be missing; busybox-static is what install-deps installs either way
fi

archive=$out/initramfs.cpio
binaries=(fio blkdiscard fallocate)
stamp_inputs=("$kernel" "$(command -v busybox)" ${rfblk:+"$rfblk"} $(for b in "${binaries[@]}"; do command -v "$b"; done) "$here/guest/init" "$here"/guest/*.sh "$0")
if [[ -f "$archive" ]]; then
  newer=0
  for f in "${stamp_inputs[@]}"; do [[ "$f" -nt "$archive" ]] && newer=1; done
  # The archive holds rfblk.ko exactly when it was asked for.
  want=0; [[ -n "$rfblk" ]] && want=1
  have=0; [[ -f "$out/.has-rfblk" ]] && have=1
  [[ $want -eq $have ]] || newer=1
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
if [[ -n "$rfblk" ]]; then
  mkdir -p "$root/lib/modules/$version/extra"
  cp "$rfblk" "$root/lib/modules/$version/extra/rfblk.ko"
fi
cp /lib/modules/"$version"/modules.{order,builtin,builtin.modinfo} "$root/lib/modules/$version/" 2>/dev/null || true
depmod -b "$root" "$version"

cp "$here/guest/init" "$root/init"
chmod +x "$root/init"
cp "$here"/guest/*.sh "$root/scenarios/"

(cd "$root" && find . -print0 | cpio --null -o -H newc --quiet) >"$archive.tmp"
mv "$archive.tmp" "$archive"
ln -sfn "$kernel" "$out/vmlinuz"
if [[ -n "$rfblk" ]]; then touch "$out/.has-rfblk"; else rm -f "$out/.has-rfblk"; fi
