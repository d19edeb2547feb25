SUMMARY = "mcp-edge device image: systemd, mcp-gateway, TPM 2.0, read-only root, A/B slots"
DESCRIPTION = "A minimal systemd image that runs mcp-gateway on a read-only root file system. \
               With DISTRO_FEATURES mcp-edge and rauc on a UEFI machine it is laid out for A/B \
               updates: ESP, rootfs-a, rootfs-b and data (docs/OTA.md)."
HOMEPAGE = "https://github.com/mcp-edge/mcp-edge"
BUGTRACKER = "https://github.com/mcp-edge/mcp-edge/issues"
SECTION = "images"
LICENSE = "MIT"
CVE_PRODUCT = "mcp-edge"

inherit core-image

IMAGE_FEATURES += "read-only-rootfs"
IMAGE_LINGUAS = ""

MCP_EDGE_OTA_PACKAGES = "${@bb.utils.contains('DISTRO_FEATURES', 'mcp-edge rauc', 'mcp-gateway-ota rauc', '', d)}"
IMAGE_INSTALL = "packagegroup-core-boot mcp-gateway tpm2-tss ${MCP_EDGE_OTA_PACKAGES}"

# The ext4 root file system is also what mcp-edge-bundle puts in a bundle.
IMAGE_FSTYPES += "ext4"

# The A/B disk layout, on UEFI machines of a distro with mcp-edge and rauc.
MCP_EDGE_AB_LAYOUT = "${@bb.utils.contains('MACHINE_FEATURES', 'efi', 'mcp-edge-image-ab-efi.inc', '', d)}"
# nooelint: oelint.spaces.lineend
require ${@bb.utils.contains('DISTRO_FEATURES', 'mcp-edge rauc', '${MCP_EDGE_AB_LAYOUT}', '', d)}
