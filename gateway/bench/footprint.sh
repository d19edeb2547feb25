#!/usr/bin/env bash
# Binary size of the gateway: the stripped x86_64 release binary with the default features (the
# full build, what the images ship) and without default features (the minimal build: MCP,
# federation, the queue, the cloud model over plain HTTP), against issue 21's targets (8 MiB
# and 4 MiB). Given a git revision, the same two builds of that revision are made beside them,
# as the baseline. Each build has a target directory of its own under .cache/footprint, so no
# build reuses what another built with other features; a second run rebuilds only what changed.
#
#   bash gateway/bench/footprint.sh [BASELINE_REVISION]
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

baseline=${1:-}
out=$repo_root/.cache/footprint
mkdir -p "$out"
ensure_build_deps  # libtss2 and the C toolchain the full build links against

# stripped_bytes SOURCE_TREE NAME CARGO_ARGUMENTS...: builds SOURCE_TREE's mcp-gateway into
# $out/NAME and prints its size in bytes (the release profile strips it).
stripped_bytes() {
    local tree=$1 name=$2
    shift 2
    step "release build: $name"
    (cd "$tree" && CARGO_TARGET_DIR="$out/$name" cargo build --release --locked \
        -p mcp-edge-gateway --bin mcp-gateway "$@" >&2)
    stat -c %s "$out/$name/release/mcp-gateway"
}

# report LABEL BYTES TARGET_BYTES
report() {
    local verdict=met
    [ "$2" -le "$3" ] || verdict=MISSED
    awk -v label="$1" -v n="$2" -v target="$3" -v verdict="$verdict" 'BEGIN {
        printf "%-34s %12d bytes %7.2f MiB   target %5.2f MiB: %s\n", label, n, n / 1048576, target / 1048576, verdict }'
}

declare -A bytes
if [ -n "$baseline" ]; then
    base_tree=$out/baseline-source
    git worktree remove --force "$base_tree" 2>/dev/null || true
    git worktree add --detach "$base_tree" "$baseline" >&2
    trap 'git worktree remove --force "$base_tree"; cleanup' EXIT
    bytes[baseline-minimal]=$(stripped_bytes "$base_tree" baseline-minimal --no-default-features)
    bytes[baseline-full]=$(stripped_bytes "$base_tree" baseline-full)
fi
bytes[minimal]=$(stripped_bytes "$repo_root" minimal --no-default-features)
bytes[full]=$(stripped_bytes "$repo_root" full)

echo "this tree ($(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo ', with changes')):"
report "full (default features)" "${bytes[full]}" $((8 * 1048576))
report "minimal (--no-default-features)" "${bytes[minimal]}" $((4 * 1048576))
if [ -n "$baseline" ]; then
    echo "baseline $baseline:"
    report "full (default features)" "${bytes[baseline-full]}" $((8 * 1048576))
    report "minimal (--no-default-features)" "${bytes[baseline-minimal]}" $((4 * 1048576))
    awk -v f="${bytes[full]}" -v bf="${bytes[baseline-full]}" -v m="${bytes[minimal]}" \
        -v bm="${bytes[baseline-minimal]}" \
        'BEGIN { printf "this tree against the baseline: full %.3f, minimal %.3f\n", f / bf, m / bm }'
fi
