# nooelint: oelint.spaces.lineend
require ${@bb.utils.contains('DISTRO_FEATURES', 'mcp-edge', 'rauc-conf_mcp-edge.inc', '', d)}
