#!/bin/sh
# mcp-edge post-build script (every mcp_edge defconfig): the device settings of a read-only
# root, as qemu/customize-rootfs.sh makes them for the reference image.
#
#   BR2_ROOTFS_POST_SCRIPT_ARGS="BOARD_DIR"   (the board's directory, below board/mcp-edge)
#
# BOARD_DIR/cmdline (if present): the slots' kernel command line after root= and rauc.slot=,
# which the RAUC backend copies into each slot's boot entry (/etc/kernel/cmdline).
set -eu
TARGET_DIR=$1
BOARD_DIR=$2

echo mcp-edge >"$TARGET_DIR/etc/hostname"
if [ -f "$BOARD_DIR/cmdline" ]; then
    install -D -m 0644 "$BOARD_DIR/cmdline" "$TARGET_DIR/etc/kernel/cmdline"
fi
# Each device gets its own machine-id on first boot, kept on the data partition.
: >"$TARGET_DIR/etc/machine-id"
