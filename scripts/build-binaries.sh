#!/usr/bin/env bash
# Builds the release binaries of mcp-gateway for both architectures the images run on, the
# files the README's "pre-built binaries" are:
#
#   bash scripts/build-binaries.sh [OUTPUT_DIR]      (default .cache/dist)
#
# Writes OUTPUT_DIR/mcp-gateway-VERSION-x86_64-linux-gnu, ...-aarch64-linux-gnu and SHA256SUMS
# (check with `sha256sum -c SHA256SUMS`). The arm64 binary is cross-built (ensure_arm64_build in
# scripts/common.sh says with what); both link glibc 2.36 and libtss2 dynamically, as on
# Debian 12.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$repo_root"
require_cargo

out=${1:-$repo_root/.cache/dist}
version=$(workspace_version)
mkdir -p "$out"
rm -f "$out"/mcp-gateway-* "$out/SHA256SUMS"
for arch in amd64 arm64; do
    step "building mcp-gateway $version for $arch (release)"
    binary=$(build_gateway "$arch")
    case "$arch" in
        amd64) name=mcp-gateway-$version-x86_64-linux-gnu ;;
        arm64) name=mcp-gateway-$version-aarch64-linux-gnu ;;
    esac
    install -m 0755 "$binary" "$out/$name"
done
(cd "$out" && sha256sum mcp-gateway-* >SHA256SUMS)
step "built in $out:"
cat "$out/SHA256SUMS" >&2
