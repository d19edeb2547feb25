#!/usr/bin/env bash
# Stamps a version into a built mcp-gateway binary, in place, without compiling it again:
#
#   bash qemu/stamp-version.sh BINARY VERSION
#
# The binary keeps 64 zero bytes for this in its .mcp_edge_version section
# (gateway/src/lib.rs, VERSION_STAMP); VERSION (at most 63 bytes) replaces them, and the stamped
# binary's --version is checked (an arm64 binary runs through qemu-user's binfmt_misc
# registration, scripts/common.sh ensure_arm64_build). qemu/build-image.sh uses it for
# MCP_EDGE_VERSION; the OTA tests use it to make their newer build.
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"

binary=${1:?usage: stamp-version.sh BINARY VERSION}
version=${2:?usage: stamp-version.sh BINARY VERSION}
[ ${#version} -le 63 ] || die "the version '$version' is longer than 63 bytes"
[ -f "$binary" ] || die "$binary does not exist"

case "$(od -An -tx1 -j18 -N2 "$binary" | tr -d ' ')" in
    3e00) objcopy=objcopy ;;                   # EM_X86_64
    b700) objcopy=aarch64-linux-gnu-objcopy ;; # EM_AARCH64
    *) die "$binary is not an x86_64 or aarch64 ELF file" ;;
esac
stamp=$(mktemp)
trap 'rm -f "$stamp"' EXIT
printf '%s' "$version" >"$stamp"
truncate -s 64 "$stamp"
"$objcopy" --update-section ".mcp_edge_version=$stamp" "$binary"
[ "$("$binary" --version)" = "mcp-gateway $version" ] ||
    die "stamping $binary failed: its --version says '$("$binary" --version)'"
