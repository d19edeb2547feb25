#!/usr/bin/env bash
# Builds a signed RAUC update bundle (verity format) from an image build's root file system:
#
#   bash qemu/build-bundle.sh IMAGE_DIR [BUNDLE]
#
# IMAGE_DIR is what qemu/build-image.sh wrote (rootfs.ext4, version, compatible,
# source-date-epoch); BUNDLE defaults to IMAGE_DIR/<compatible>-<version>.raucb. The bundle's version is the gateway's
# version in that build, its compatible string the machine's. Environment:
#   MCP_EDGE_SIGNING_CERT, MCP_EDGE_SIGNING_KEY   signer (default: .cache/ota-keys, made by
#                                                 qemu/ota-keys.sh on first use)
#   MCP_EDGE_RAUC_KEYRING                         CA to check the new bundle against (default:
#                                                 .cache/ota-keys/ca.cert.pem); "none": skip
# The squashfs payload is bit-identical for the same root file system and SOURCE_DATE_EPOCH;
# the verity salt (random), hash tree and signature (signing time) differ each time: docs/OTA.md.
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"
cd "$repo_root"

image_dir=${1:?usage: build-bundle.sh IMAGE_DIR [BUNDLE]}
for file in rootfs.ext4 version compatible source-date-epoch; do
    [ -f "$image_dir/$file" ] || die "$image_dir/$file is missing: build the image with qemu/build-image.sh first"
done
version=$(cat "$image_dir/version")
compatible=$(cat "$image_dir/compatible")
bundle=${2:-$image_dir/$compatible-$version.raucb}
export SOURCE_DATE_EPOCH
SOURCE_DATE_EPOCH=$(cat "$image_dir/source-date-epoch")

ensure_apt_packages rauc squashfs-tools openssl
keys=$repo_root/.cache/ota-keys
if [ -z "${MCP_EDGE_SIGNING_CERT:-}" ]; then
    bash "$repo_root/qemu/ota-keys.sh" "$keys" >/dev/null
fi
cert=${MCP_EDGE_SIGNING_CERT:-$keys/signing.cert.pem}
key=${MCP_EDGE_SIGNING_KEY:-$keys/signing.key.pem}
keyring=${MCP_EDGE_RAUC_KEYRING:-$keys/ca.cert.pem}
keyring_args=(--keyring="$keyring")
[ "$keyring" = none ] && keyring_args=(--no-verify)

work=$(mktemp -d "${TMPDIR:-/tmp}/mcp-edge-bundle.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir "$work/content"
cp --sparse=always "$image_dir/rootfs.ext4" "$work/content/rootfs.ext4"
cat >"$work/content/manifest.raucm" <<MANIFEST
[update]
compatible=$compatible
version=$version
description=mcp-edge reference image, mcp-gateway $version
build=$SOURCE_DATE_EPOCH

[bundle]
format=verity

[image.rootfs]
filename=rootfs.ext4
MANIFEST
find "$work/content" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

step "signing bundle $version for $compatible"
rm -f "$bundle"
# zstd level 9 instead of mksquashfs's default gzip: 3 % smaller and 11 times faster to make
# (docs/BENCHMARKS.md), and quicker for the device to read while it installs. Debian's, Yocto's
# and Buildroot's kernels read it (CONFIG_SQUASHFS_ZSTD).
rauc bundle --cert="$cert" --key="$key" "${keyring_args[@]}" --mksquashfs-args="-comp zstd -Xcompression-level 9" \
    "$work/content" "$bundle" >"$work/rauc.log" 2>&1 ||
    die "rauc bundle failed: $(tail -n 5 "$work/rauc.log")"
step "built $bundle ($(du -h --apparent-size "$bundle" | cut -f1))"
