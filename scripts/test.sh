#!/usr/bin/env bash
# Installs what the tests need, then runs every check CI runs: formatting, clippy, and the whole
# test suite (unit tests plus integration tests that start the real gateway on loopback and drive
# it with the official MCP Python SDK, the reference everything server and the conformance suite),
# then the offline checks of the Yocto layer and the Buildroot tree (tests/layers) and the
# whole-image tests (tests/image): the x86_64 reference image built twice, booted in QEMU and
# updated; the arm64 image booted in QEMU and the Raspberry Pi card made from it.
#
# The arm64 image (a cross build and a Debian tree made under qemu-user, long single-threaded
# stretches) is built and tested in the background from the start, in a session of its own, so
# that it runs beside the other steps and is killed with its children if this script stops.
# (The kernel's autogroup scheduling gives that session an equal share of the CPU; a nice value
# would apply only inside the session.) Its log is .cache/logs/arm64.log and goes into this log
# when it is done. Its OTA tests and its second build are a separate command (docs/IMAGE.md),
# which would take the whole command past its time budget.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$repo_root"

require_cargo
[ "$(id -u)" -eq 0 ] || die "the image builds need root (mmdebstrap's root mode); run as root or in CI"
ensure_build_deps
ensure_rust_components rustfmt clippy
ensure_test_tools
ensure_image_tools arm64  # and what the amd64 image needs
ensure_qemu amd64
ensure_qemu arm64
bash qemu/ota-keys.sh "$repo_root/.cache/ota-keys" >/dev/null

arm64_log=$repo_root/.cache/logs/arm64.log
mkdir -p "$(dirname "$arm64_log")"
step "arm64 image and Raspberry Pi card: building and testing in the background ($arm64_log)"
# shellcheck disable=SC2016 # expanded by the background shell
MCP_EDGE_ARCH=arm64 setsid --wait bash -c '
    set -e
    bash qemu/build-image.sh
    bash qemu/build-pi-card.sh
    source .cache/test-tools/env
    MCP_EDGE_PREBUILT=1 "$PYTHON" -m pytest -v -rP --durations=20 -p no:cacheprovider \
        --basetemp=.cache/pytest-arm64 tests/image --ignore=tests/image/test_ota.py \
        --deselect=tests/image/test_boot.py::test_a_second_build_is_bit_identical' \
    >"$arm64_log" 2>&1 &
arm64_job=$!
trap 'kill -- -"$arm64_job" 2>/dev/null || true' EXIT

# A fresh clone (CI) builds everything once: incremental compilation would only add work.
[ -z "${CI:-}" ] || export CARGO_INCREMENTAL=0

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo test, compiled through clippy (warnings are errors)"
# One build for both: clippy-driver compiles the workspace's crates as rustc would and lints
# them on the way, which is how `cargo clippy` runs it (RUSTC_WORKSPACE_WRAPPER, the lint flags
# in CLIPPY_ARGS). `cargo test` builds every target `cargo clippy --all-targets` checks (the
# library and binary, their tests, the integration tests, the examples; there are no benches).
clippy_driver=$(command -v clippy-driver) || die "clippy-driver is not on PATH (rustup component add clippy)"
linted() { RUSTC_WORKSPACE_WRAPPER=$clippy_driver CLIPPY_ARGS=-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__ "$@"; }
# The conformance test runs the fixture upstream from the workspace's target directory.
linted cargo build --locked -p mcp-edge-conformance-upstream
linted cargo test --locked --workspace

step "Yocto layer and Buildroot tree: crate list, oelint-adv, kas dump, kconfiglib, .mk/.hash (offline)"
# shellcheck disable=SC1091 # written by ensure_test_tools
source "$repo_root/.cache/test-tools/env"
"$PYTHON" -m pytest -v -p no:cacheprovider tests/layers

step "whole-image tests, x86_64: build the reference image, boot it in QEMU, test it from the host"
# -rP: what passing tests print (boot time, the quote, readings "in the booted image") goes in
# the log's summary.
"$PYTHON" -m pytest -v -rP --durations=20 -p no:cacheprovider tests/image

step "arm64: waiting for the background build and tests"
arm64_status=0
wait "$arm64_job" || arm64_status=$?
sed 's/^/[arm64] /' "$arm64_log"
[ "$arm64_status" -eq 0 ] || die "the arm64 image build or its tests failed (exit $arm64_status); its log is above and in $arm64_log"
