# nooelint: oelint.file.underscores, oelint.var.bbclassextend
# (a bundle has no version of its own, as meta-rauc's, and is for the target only)
SUMMARY = "Signed RAUC bundle of mcp-edge-image for A/B updates"
DESCRIPTION = "A verity bundle with the root file system of mcp-edge-image for the slot pair \
               rootfs.0/rootfs.1, signed with MCP_EDGE_SIGNING_KEY and MCP_EDGE_SIGNING_CERT."
HOMEPAGE = "https://github.com/mcp-edge/mcp-edge"
BUGTRACKER = "https://github.com/mcp-edge/mcp-edge/issues"
SECTION = "base"
LICENSE = "MIT"
CVE_PRODUCT = "mcp-edge"
# Made from mcp-edge-image's output; no sources of its own.
SRC_URI = ""

inherit bundle

RAUC_BUNDLE_FORMAT = "verity"
RAUC_BUNDLE_COMPATIBLE = "${MCP_EDGE_RAUC_COMPATIBLE}"
RAUC_BUNDLE_VERSION = "${MCP_EDGE_VERSION}"
RAUC_BUNDLE_DESCRIPTION = "mcp-edge-image for ${MACHINE}, mcp-gateway ${MCP_EDGE_VERSION}"
RAUC_BUNDLE_SLOTS = "rootfs"
RAUC_SLOT_rootfs = "mcp-edge-image"
RAUC_SLOT_rootfs[fstype] = "ext4"

RAUC_KEY_FILE = "${MCP_EDGE_SIGNING_KEY}"
RAUC_CERT_FILE = "${MCP_EDGE_SIGNING_CERT}"
RAUC_KEYRING_FILE = "${MCP_EDGE_RAUC_KEYRING}"

# nooelint: oelint.task.noanonpython - skipping at parse time names what is missing
python () {
    if not bb.utils.contains('MACHINE_FEATURES', 'efi', True, False, d):
        raise bb.parse.SkipRecipe("A/B updates need a UEFI machine (MACHINE_FEATURES efi; docs/YOCTO.md)")
    for name in ('MCP_EDGE_SIGNING_KEY', 'MCP_EDGE_SIGNING_CERT', 'MCP_EDGE_RAUC_KEYRING'):
        if not d.getVar(name):
            raise bb.parse.SkipRecipe("set %s (docs/YOCTO.md: signing bundles)" % name)
}
