SUMMARY = "mcp-edge device image: systemd, mcp-gateway, TPM 2.0, read-only root"
DESCRIPTION = "A minimal systemd image that runs mcp-gateway. With DISTRO_FEATURE mcp-edge on a \
               machine the layer has a disk layout for, the root file system is read-only and \
               the device's state lives on a data partition: on UEFI machines (with rauc) the \
               A/B layout of docs/OTA.md, on the Raspberry Pi an SD card with a spare slot."
HOMEPAGE = "https://github.com/mcp-edge/mcp-edge"
BUGTRACKER = "https://github.com/mcp-edge/mcp-edge/issues"
SECTION = "images"
LICENSE = "MIT"
CVE_PRODUCT = "mcp-edge"

inherit core-image

IMAGE_LINGUAS = ""

IMAGE_INSTALL = "packagegroup-core-boot mcp-gateway tpm2-tss"

# The ext4 root file system is also what mcp-edge-bundle puts in a bundle.
IMAGE_FSTYPES += "ext4"

# The disk layout: the root file system read-only, /etc and /var overlays on a data partition
# (mcp-gateway-data). UEFI machines get the A/B layout when the distro has rauc; the
# Raspberry Pi an SD card layout of its own (dynamic-layers/raspberrypi: its cmdline.txt).
# Other machines (the Jetson, whose flash layout is meta-tegra's) have no layout of ours yet
# and keep a writable root: a read-only one without the data partition would put the
# gateway's queue on oe-core's volatile /var/lib, lost at every reboot.
MCP_EDGE_DISK_LAYOUT = "${@bb.utils.contains('MACHINE_FEATURES', 'efi', bb.utils.contains('DISTRO_FEATURES', 'rauc', 'mcp-edge-image-ab-efi.inc', '', d), '', d)}"
MCP_EDGE_DISK_LAYOUT:rpi = "mcp-edge-image-rpi.inc"
# The size of each root slot and of the data partition in the layouts.
MCP_EDGE_SLOT_SIZE ??= "1024M"
MCP_EDGE_DATA_SIZE ??= "256M"
# nooelint: oelint.spaces.lineend
require ${@bb.utils.contains('DISTRO_FEATURES', 'mcp-edge', '${MCP_EDGE_DISK_LAYOUT}', '', d)}
