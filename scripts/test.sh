#!/usr/bin/env bash
# Installs what the tests need, then runs every check CI runs: formatting, clippy, and the whole
# test suite (unit tests plus integration tests that start the real gateway on loopback and drive
# it with the official MCP Python SDK, the reference everything server and the conformance suite),
# then the offline checks of the Yocto layer and the Buildroot tree (tests/layers) and the
# whole-image tests (tests/image: build the reference image twice, boot it in QEMU).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$repo_root"

require_cargo
ensure_build_deps
ensure_rust_components rustfmt clippy
ensure_test_tools

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings are errors)"
cargo clippy --locked --all-targets -- -D warnings

step "cargo test"
# The conformance test runs the fixture upstream from the workspace's target directory.
cargo build --locked -p mcp-edge-conformance-upstream
cargo test --locked --workspace

step "Yocto layer and Buildroot tree: crate list, oelint-adv, kas dump, kconfiglib, .mk/.hash (offline)"
# shellcheck disable=SC1091 # written by ensure_test_tools
source "$repo_root/.cache/test-tools/env"
"$PYTHON" -m pytest -v -p no:cacheprovider tests/layers

step "whole-image tests: build the reference image, boot it in QEMU, test it from the host"
[ "$(id -u)" -eq 0 ] || die "the image build needs root (mmdebstrap's root mode); run as root or in CI"
ensure_qemu
# -rP: what passing tests print (boot time, the quote, readings "in the booted image") goes in
# the log's summary.
"$PYTHON" -m pytest -v -rP --durations=20 -p no:cacheprovider tests/image
