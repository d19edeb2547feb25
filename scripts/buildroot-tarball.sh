#!/usr/bin/env bash
# Makes mcp-gateway's source tarball for Buildroot from this checkout, the way Buildroot makes
# it from a release: the committed tree (git archive HEAD), its crates vendored and repacked
# reproducibly by the Buildroot tree's own support/download/cargo-post-process (cargo vendor
# needs the crate registry once). The result is what `make mcp-gateway-source` would have put
# in the download directory for the release of this commit.
#
#   bash scripts/buildroot-tarball.sh BUILDROOT_DIR DL_DIR [--update-hash]
#
# Writes DL_DIR/mcp-gateway/mcp-gateway-VERSION-cargoN.tar.gz (N: the Buildroot tree's
# format) and prints its sha256. --update-hash writes that into
# buildroot-external/package/mcp-gateway/mcp-gateway.hash: the release step, or how to build
# a commit that is not a release (docs/BUILDROOT.md).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
[ $# -ge 2 ] || die "usage: $0 BUILDROOT_DIR DL_DIR [--update-hash]"
buildroot=$(realpath "$1")
dl_dir=$(realpath -m "$2")
update_hash=${3:-}

post_process=$buildroot/support/download/cargo-post-process
[ -x "$post_process" ] || die "$buildroot is not a Buildroot tree (no $post_process)"
version=$(workspace_version)
suffix=$(sed -n 's/^BR_FMT_VERSION_cargo = //p' "$buildroot/package/pkg-download.mk")
[ -n "$suffix" ] || die "no BR_FMT_VERSION_cargo in $buildroot/package/pkg-download.mk"
name=mcp-gateway-$version
tarball=$dl_dir/mcp-gateway/$name$suffix.tar.gz

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$dl_dir/mcp-gateway"
git -C "$repo_root" archive --format=tar.gz --prefix="mcp-edge-$version/" HEAD >"$work/source.tar.gz"
(
    cd "$work"
    TAR=tar CARGO_HOME=${CARGO_HOME:-$HOME/.cargo} \
        "$post_process" -o "$work/source.tar.gz" -n "$name" -m gateway/Cargo.toml >/dev/null
)
mv "$work/source.tar.gz" "$tarball"
sum=$(sha256sum "$tarball" | cut -d' ' -f1)
echo "$sum  ${tarball##*/}"

if [ "$update_hash" = --update-hash ]; then
    hash_file=$repo_root/buildroot-external/package/mcp-gateway/mcp-gateway.hash
    license=$(sha256sum "$repo_root/LICENSE" | cut -d' ' -f1)
    cat >"$hash_file" <<HASH
# Locally calculated (scripts/buildroot-tarball.sh)
sha256  $sum  ${tarball##*/}
sha256  $license  LICENSE
HASH
    echo "wrote $hash_file"
fi
