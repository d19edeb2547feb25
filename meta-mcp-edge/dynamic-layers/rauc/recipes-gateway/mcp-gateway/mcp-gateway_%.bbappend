# With meta-rauc in the build, the update glue pulls RAUC in (mcp-gateway-ota's mark-good and
# boot backend drive it); without it the package still resolves, so a world build does too.
# (oelint reads this after the recipe's list, so the merged list cannot be alphabetical.)
# nooelint: oelint.vars.dependsordered
RDEPENDS:${PN}-ota += "rauc"
