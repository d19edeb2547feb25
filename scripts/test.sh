#!/usr/bin/env bash
# Installs what the tests need, then runs every check CI runs: formatting, clippy, and the whole
# test suite (unit tests plus integration tests that start the real gateway on loopback and drive
# it with the official MCP Python SDK, the reference everything server and the conformance suite).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$repo_root"

require_cargo
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
