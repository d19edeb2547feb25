#!/usr/bin/env bash
# Installs what the tests need, then runs every check CI runs: formatting, clippy, and the whole
# test suite (unit tests plus integration tests that start the real gateway on loopback and drive
# it with the official MCP Python SDK, the reference everything server and the conformance suite),
# then the portable core built for WASI and run under wasmtime (tests/wasm), a short fuzz run of
# every parser of outside input (scripts/fuzz.sh), the offline checks of the Yocto layer and the
# Buildroot tree (tests/layers) and the whole-image tests (tests/image): the x86_64 reference
# image built twice, booted in QEMU and updated; the arm64 image booted in QEMU and the
# Raspberry Pi card made from it.
#
# The whole-image tests are two jobs, one per architecture, started first and run in the
# background beside the cargo build and tests: each builds its image (a release build of the
# gateway, a Debian tree, the disk; for arm64 a cross build and a tree made under qemu-user)
# and boots and tests it. The command keeps both cores busy from start to end
# (docs/BENCHMARKS.md), so the jobs shorten it only where a step would leave a core idle. Each
# job runs in a session of its own, killed with its children if this script stops (the kernel's
# autogroup scheduling gives each session an equal share of the CPU), and logs to
# .cache/logs/image-ARCH.log, which goes into this log when the job is done. The arm64 OTA tests and second build are a separate
# command (docs/IMAGE.md), which would take the whole command past its time budget.
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
ensure_wasm_build
bash qemu/ota-keys.sh "$repo_root/.cache/ota-keys" >/dev/null
# A fresh clone (CI) builds everything once: incremental compilation would only add work.
[ -z "${CI:-}" ] || export CARGO_INCREMENTAL=0

# start_image_job ARCH PYTEST_ARGUMENTS...: builds ARCH's image (conftest.py's fixtures do)
# and runs tests/image against it, in the background; sets image_job[ARCH].
declare -A image_job
image_log() { echo "$repo_root/.cache/logs/image-$1.log"; }
start_image_job() {
    local arch=$1 log
    log=$(image_log "$1")
    shift
    mkdir -p "$(dirname "$log")"
    step "whole-image tests, $arch: building and testing in the background ($log)"
    # -rP: what passing tests print (boot time, the quote, readings "in the booted image") goes
    # in the log's summary.
    MCP_EDGE_ARCH=$arch setsid --wait "$PYTHON" -m pytest -v -rP --durations=20 -p no:cacheprovider \
        --basetemp="$repo_root/.cache/pytest-$arch" tests/image "$@" >"$log" 2>&1 &
    image_job[$arch]=$!
}
# wait_image_job ARCH: waits for ARCH's job and puts its log into this one.
wait_image_job() {
    local arch=$1 log status=0
    log=$(image_log "$1")
    step "whole-image tests, $arch: waiting for the background job"
    wait "${image_job[$arch]}" || status=$?
    sed "s/^/[$arch] /" "$log"
    [ "$status" -eq 0 ] || die "the $arch image build or its tests failed (exit $status); its log is above and in $log"
}
stop_image_jobs() {
    local job
    for job in "${image_job[@]}"; do kill -- -"$job" 2>/dev/null || true; done
}
trap stop_image_jobs EXIT

# shellcheck disable=SC1091 # written by ensure_test_tools
source "$repo_root/.cache/test-tools/env"
# x86_64: the reference image built twice, booted, updated, rolled back and power-cut.
start_image_job amd64
# arm64: the same tests but the OTA ones and the second build, and the Raspberry Pi card.
start_image_job arm64 --ignore=tests/image/test_ota.py \
    --deselect=tests/image/test_boot.py::test_a_second_build_is_bit_identical

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

step "the gateway without default features (docs/FEATURES.md), compiled through clippy"
linted cargo build --locked -p mcp-edge-gateway --no-default-features --bins
# Without a feature, a configuration that needs it is refused, naming the feature.
minimal=$repo_root/.cache/no-default-features
mkdir -p "$minimal"
# expect_refusal TOML MESSAGE: the gateway without default features refuses to start with
# TOML added to a loopback configuration, saying MESSAGE.
expect_refusal() {
    local refusal
    printf '[gateway]\nbind_address = "127.0.0.1:0"\n%s\n' "$1" >"$minimal/mcp-edge.toml"
    if refusal=$(cd "$minimal" && timeout 60 "$repo_root/target/debug/mcp-gateway" serve --config mcp-edge.toml 2>&1); then
        die "the gateway without default features started with: $1"
    fi
    grep -qF "$2" <<<"$refusal" ||
        die "the gateway without default features did not say \"$2\" when refusing to start: $refusal"
}
expect_refusal $'[security]\nuse_tpm = true\nattestation_required = true' \
    "built without TPM support (the \`tpm\` feature)"
expect_refusal $'[models]\nmodel_path = "model.gguf"' \
    "built without the local model (the \`local-model\` feature)"
expect_refusal $'[offline]\ncompression = "zstd"' \
    "built without zstd (the \`compression\` feature)"
expect_refusal $'[security]\ntls_cert = "cert.pem"\ntls_key = "key.pem"' \
    "built without TLS (the \`tls\` feature)"
expect_refusal $'[models]\ncloud_endpoint = "https://models.example/v1"' \
    "built without TLS (the \`tls\` feature)"
# What is left is an MCP gateway: the official Python SDK's client over stdio.
printf '[offline]\npersistence_path = "%s/queue.sqlite"\n' "$minimal" >"$minimal/stdio.toml"
seen=$("$PYTHON" gateway/tests/python/sdk_client.py --stdio "$repo_root/target/debug/mcp-gateway" \
    --config "$minimal/stdio.toml") || die "the MCP SDK client failed against the gateway without default features"
"$PYTHON" -c 'import json, sys; seen = json.loads(sys.argv[1]); assert "device_info" in seen["tools"] and not seen["device_info_is_error"], seen' "$seen" ||
    die "the gateway without default features did not answer the MCP SDK client as expected: $seen"

step "the portable core for wasm32-wasip1 (docs/WASM.md): under wasmtime, driven by the MCP SDK client"
core_wasm=$(bash scripts/build-wasm.sh)
MCP_EDGE_CORE_WASM=$core_wasm "$PYTHON" -m pytest -v -p no:cacheprovider tests/wasm

step "fuzzing every parser of outside input, 15 s per target, unoptimised build (docs/FUZZING.md)"
bash scripts/fuzz.sh 15 dev

step "Yocto layer and Buildroot tree: crate list, oelint-adv, kas dump, kconfiglib, .mk/.hash (offline)"
"$PYTHON" -m pytest -v -p no:cacheprovider tests/layers

wait_image_job amd64
wait_image_job arm64
