# nooelint: oelint.spaces.lineend
require ${@bb.utils.contains('DISTRO_FEATURES', 'mcp-edge', 'rpi-cmdline_mcp-edge.inc', '', d)}
