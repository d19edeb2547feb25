#!/usr/bin/env bash
# Builds the Raspberry Pi 4 SD card from an arm64 image build: that build's root file system,
# byte for byte the one the arm64 reference image boots, behind the Pi's boot firmware, on an
# MBR disk as the Pi's boot EEPROM reads it (the layout of qemu/layout.sh). The Pi boots the
# generic kernel of that root file system (the UEFI image boots its cloud kernel).
#
#   firmware (FAT32: Debian's raspi-firmware, and the kernel, initrd and Broadcom device trees
#   of the root file system; config.txt, cmdline.txt) | rootfs-a | rootfs-b (empty) | data
#
#   bash qemu/build-pi-card.sh [IMAGE_DIR [OUTPUT_DIR]]   (default .cache/image-arm64 for both)
#
# IMAGE_DIR is what MCP_EDGE_ARCH=arm64 qemu/build-image.sh wrote. Writes
# OUTPUT_DIR/mcp-edge-rpi4.img, its block map for bmaptool (.img.bmap) and .img.sha256. Every
# file is read from the root file system with debugfs: no mounts, no loop devices. Two builds
# from the same image build are bit-identical. docs/IMAGE.md says how to flash it.
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"
arch=arm64
# shellcheck source=layout.sh
source "$repo_root/qemu/layout.sh"
cd "$repo_root"

image_dir=${1:-$repo_root/.cache/image-arm64}
out=${2:-$image_dir}
for file in rootfs.ext4 compatible source-date-epoch; do
    [ -f "$image_dir/$file" ] ||
        die "$image_dir/$file is missing: build the arm64 image first (MCP_EDGE_ARCH=arm64 bash qemu/build-image.sh)"
done
[ "$(cat "$image_dir/compatible")" = mcp-edge-arm64-uefi ] ||
    die "$image_dir is a build for $(cat "$image_dir/compatible"); the Pi card needs the arm64 one"
ensure_image_tools amd64  # the tools to assemble a card; the arm64 build made its content
export SOURCE_DATE_EPOCH
SOURCE_DATE_EPOCH=$(cat "$image_dir/source-date-epoch")
export E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH TZ=UTC LC_ALL=C

rootfs=$image_dir/rootfs.ext4
work=$(mktemp -d "${TMPDIR:-/tmp}/mcp-edge-pi-card.XXXXXX")
trap 'rm -rf "$work"' EXIT

# from_rootfs dump FILE DEST | rdump DIRECTORY PARENT: copies a file, or a directory into
# PARENT, out of the root file system.
from_rootfs() {
    local got=$3
    [ "$1" = dump ] || got=$3/$(basename "$2")
    debugfs -R "$1 $2 $3" "$rootfs" >/dev/null 2>"$work/debugfs.log"
    [ -e "$got" ] || die "cannot read $2 from $rootfs: $(tail -n 3 "$work/debugfs.log")"
}

step "Pi firmware partition from $rootfs"
# The generic kernel (the cloud one, which the UEFI image boots, has no Pi drivers).
kernels=$(debugfs -R "ls /boot" "$rootfs" 2>/dev/null | tr -s ' ' '\n' | grep '^vmlinuz-.*-arm64$' | grep -v -- -cloud- || true)
[ "$(echo "$kernels" | grep -c .)" = 1 ] || die "expected one generic arm64 kernel in $rootfs's /boot, found: ${kernels:-none}"
version=${kernels#vmlinuz-}
firmware=$work/firmware
mkdir -p "$firmware"
# bootcode.bin, start*.elf, fixup*.dat: the Pi's GPU firmware, from Debian's raspi-firmware.
from_rootfs rdump /usr/lib/raspi-firmware "$work"
cp "$work/raspi-firmware/"* "$firmware/"
# The firmware picks the device tree by the board's name (bcm2711-rpi-4-b.dtb on a Pi 4).
from_rootfs rdump "/usr/lib/linux-image-$version/broadcom" "$work"
cp "$work/broadcom/"bcm*.dtb "$firmware/"
from_rootfs dump "/boot/vmlinuz-$version" "$firmware/vmlinuz-$version"
from_rootfs dump "/boot/initrd.img-$version" "$firmware/initrd.img-$version"
# What Debian's raspi-firmware hook writes for arm64, with the kernel and initrd named.
cat >"$firmware/config.txt" <<CONFIG
# mcp-edge: Raspberry Pi 4 (arm64), Debian's kernel and device trees
arm_64bit=1
enable_uart=1
upstream_kernel=1

kernel=vmlinuz-$version
initramfs initrd.img-$version
CONFIG
# Slot a's command line, as on the UEFI image (the root file system's /etc/kernel/cmdline),
# with the Pi's consoles: the mini UART on the GPIO header (ttyS1) and the screen.
from_rootfs dump /etc/kernel/cmdline "$work/cmdline"
echo "root=PARTUUID=$pi_disk_id-02 rauc.slot=a $(sed 's/console=[^ ]*/console=ttyS1,115200 console=tty0/' "$work/cmdline")" \
    >"$firmware/cmdline.txt"
make_fat "$work/firmware.img" FIRMWARE "$pi_firmware_serial" "$firmware" -F 32

step "MBR disk"
make_empty_slots "$work"
card=$out/mcp-edge-rpi4.img
new_disk "$card"
sfdisk --quiet "$card" <<TABLE
label: dos
label-id: 0x$pi_disk_id
unit: sectors

start=2048, size=$((boot_mib * 2048)), type=c, bootable
size=$((root_mib * 2048)), type=83
size=$((root_mib * 2048)), type=83
size=$((data_mib * 2048)), type=83
TABLE
write_partitions "$card" "$work/firmware.img" "$rootfs" "$work/root-b.img" "$work/data.img"
bmaptool --quiet create -o "$card.bmap" "$card"
record_disk "$card"
