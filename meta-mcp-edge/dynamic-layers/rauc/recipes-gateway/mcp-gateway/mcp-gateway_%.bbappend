# With meta-rauc in the build, the update glue pulls RAUC in (mcp-gateway-ota's mark-good and
# boot backend drive it); without it the package still resolves, so a world build does too.
RDEPENDS:${PN}-ota += "rauc"
