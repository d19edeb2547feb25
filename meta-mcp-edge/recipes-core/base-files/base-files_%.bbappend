# nooelint: oelint.spaces.lineend
require ${@bb.utils.contains('DISTRO_FEATURES', 'mcp-edge', 'base-files_mcp-edge.inc', '', d)}
