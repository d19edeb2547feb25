#!/usr/bin/env bash
# Builds the portable core (core/, docs/WASM.md) for wasm32-wasip1 and prints the module's path:
#
#   bash scripts/build-wasm.sh        -> .cache/wasm-target/wasm32-wasip1/release/mcp-edge-core.wasm
#
# rustup's toolchain here has no wasm32 target, so this is Debian's Rust (rustc-web, 1.96) with
# its standard library's source (rust-web-src): cargo builds std for the target itself
# (-Zbuild-std, allowed on a stable compiler by RUSTC_BOOTSTRAP). wasi-libc provides the libc and
# the WASI start file, lld-19 links. Debian's cargo, matching the std source; its own target
# directory, so that the two compilers never share build outputs.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$repo_root"

ensure_wasm_build >&2
wasi_libc=/usr/lib/wasm32-wasi
target_dir=$repo_root/.cache/wasm-target
step "building the portable core for wasm32-wasip1 ($target_dir)"
# Without crt1-command.o, wasm-ld finds no _start: the module would not be a WASI command.
RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc CARGO_TARGET_DIR=$target_dir \
    CARGO_TARGET_WASM32_WASIP1_LINKER=wasm-ld-19 \
    RUSTFLAGS="-C link-self-contained=no -L native=$wasi_libc -C link-arg=$wasi_libc/crt1-command.o" \
    /usr/bin/cargo build --locked --release -p mcp-edge-core --target wasm32-wasip1 \
    -Zbuild-std=std,panic_abort >&2
module=$target_dir/wasm32-wasip1/release/mcp-edge-core.wasm
step "$(stat -c %s "$module") bytes: $module"
echo "$module"
