#!/bin/sh
# mcp-edge post-image script (every mcp_edge defconfig): lays out the disk image with
# BOARD_DIR/genimage.cfg and writes its block map.
#
#   BR2_ROOTFS_POST_SCRIPT_ARGS="BOARD_DIR"
#
# UEFI boards (systemd-boot in BINARIES_DIR/efi-part): the ESP tree of docs/OTA.md, systemd-boot
# as the removable-media loader and slot a's kernel and first boot entry, written by the RAUC
# backend itself. The Raspberry Pi: the TPM overlay in config.txt (the defconfig names
# BOARD_DIR/cmdline.txt for the firmware's kernel command line).
set -eu
BINARIES_DIR=$1
BOARD_DIR=$2
if [ -d "$BINARIES_DIR/efi-part/EFI/BOOT" ]; then
    # Slot a's first entry names rootfs-a by the partition UUID BOARD_DIR/genimage.cfg gives it.
    root_a_partuuid=$(awk '/partition rootfs-a/ { slot = 1 } slot && /partition-uuid/ { print $3; exit }' \
        "$BOARD_DIR/genimage.cfg")
    esp=$BINARIES_DIR/esp
    rm -rf "$esp"
    mkdir -p "$esp/EFI/BOOT" "$esp/loader"
    cp "$BINARIES_DIR"/efi-part/EFI/BOOT/boot*.efi "$esp/EFI/BOOT/"
    echo "timeout 0" >"$esp/loader/loader.conf"
    "$TARGET_DIR/usr/lib/mcp-edge/rauc-systemd-boot" seed "$esp" "$TARGET_DIR" a "$root_a_partuuid"
elif [ -d "$BINARIES_DIR/rpi-firmware" ]; then
    grep -qx "dtoverlay=tpm-slb9670" "$BINARIES_DIR/rpi-firmware/config.txt" ||
        echo "dtoverlay=tpm-slb9670" >>"$BINARIES_DIR/rpi-firmware/config.txt"
fi

genimage_cfg=$BOARD_DIR/genimage.cfg
if [ -f "$BOARD_DIR/genimage.cfg.in" ]; then
    # The firmware partition's files, as Buildroot's own Raspberry Pi boards list them.
    kernel=$(sed -n 's/^kernel=//p' "$BINARIES_DIR/rpi-firmware/config.txt")
    files=$(cd "$BINARIES_DIR" && for f in *.dtb rpi-firmware/* "$kernel"; do printf '\t\t\t"%s",\n' "$f"; done)
    genimage_cfg=$BINARIES_DIR/genimage.cfg
    awk -v files="$files" '$0 == "#BOOT_FILES#" { print files; next } { print }' \
        "$BOARD_DIR/genimage.cfg.in" >"$genimage_cfg"
fi

support/scripts/genimage.sh -c "$genimage_cfg"
"$HOST_DIR/bin/bmaptool" create -o "$BINARIES_DIR/sdcard.img.bmap" "$BINARIES_DIR/sdcard.img"
