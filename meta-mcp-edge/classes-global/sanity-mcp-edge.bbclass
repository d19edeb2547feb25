# Warns once per build when meta-mcp-edge is in BBLAYERS but DISTRO_FEATURES lacks "mcp-edge":
# the layer's bbappends then change nothing (they are gated on the feature, as meta-rauc's are),
# and the image has no read-only A/B layout. Set SKIP_META_MCP_EDGE_SANITY_CHECK = "1" to
# silence it, for example in a build that only wants the mcp-gateway package.

addhandler mcp_edge_bbappend_distrocheck
mcp_edge_bbappend_distrocheck[eventmask] = "bb.event.SanityCheck"
python mcp_edge_bbappend_distrocheck() {
    skip_check = e.data.getVar('SKIP_META_MCP_EDGE_SANITY_CHECK') == "1"
    if 'mcp-edge' not in e.data.getVar('DISTRO_FEATURES').split() and not skip_check:
        bb.warn("You have included the meta-mcp-edge layer, but 'mcp-edge' has not been enabled "
                "in your DISTRO_FEATURES. Its bbappends and the image's A/B layout stay off. Use "
                "DISTRO = \"mcp-edge\", add the feature, or set SKIP_META_MCP_EDGE_SANITY_CHECK = \"1\".")
}
