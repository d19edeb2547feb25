#!/usr/bin/env bash
# tools/call throughput and latency through the gateway, three ways in one run, alternating:
#   builtin   client → gateway → built-in device_info
#   federated client → gateway → upstream gateway (Streamable HTTP) → its device_info
#   direct    client → upstream gateway → device_info   (the baseline for "federated")
# federated − direct is the latency the gateway adds to an upstream call.
#
#   bash gateway/bench/mcp-tools-call.sh [ROUNDS] [SECONDS] [CONNECTIONS]
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

rounds=${1:-5}
seconds=${2:-10}
connections=${3:-8}

step "building release binaries"
cargo build --release --locked --bin mcp-gateway --example mcp_load >&2
fixture="$repo_root/gateway/tests/fixtures/sysroot-rpi4"

printf '[gateway]\nbind_address = "127.0.0.1:0"\nmax_connections = 256\n[device]\nsystem_root = "%s"\n' \
    "$fixture" >"$bench_tmp/upstream.toml"
start upstream ./target/release/mcp-gateway serve --config "$bench_tmp/upstream.toml"
printf '[gateway]\nbind_address = "127.0.0.1:0"\nmax_connections = 256\n[device]\nsystem_root = "%s"\n[[upstreams]]\nname = "up"\nprefix = "up"\nurl = "http://%s/mcp"\n' \
    "$fixture" "$upstream_addr" >"$bench_tmp/front.toml"
start front ./target/release/mcp-gateway serve --config "$bench_tmp/front.toml"
sleep 2 # let the front gateway connect to its upstream

declare -A rps p50 p99
run() { # NAME URL TOOL
    local out
    out=$(./target/release/examples/mcp_load "$2" "$3" "$connections" "$seconds")
    grep -q 'errors=0' <<<"$out" || echo "$1: $out" >&2
    rps[$1]+=" $(sed 's/.*rps=\([^ ]*\).*/\1/' <<<"$out")"
    p50[$1]+=" $(sed 's/.*p50_ms=\([^ ]*\).*/\1/' <<<"$out")"
    p99[$1]+=" $(sed 's/.*p99_ms=\([^ ]*\).*/\1/' <<<"$out")"
}
for round in $(seq "$rounds"); do
    run builtin "http://$front_addr/mcp" device_info
    run federated "http://$front_addr/mcp" up_device_info
    run direct "http://$upstream_addr/mcp" device_info
    echo "round $round done" >&2
done

echo "| path | tools/call per s (median of $rounds) | p50 ms | p99 ms |"
echo "|---|---|---|---|"
for name in builtin federated direct; do
    # shellcheck disable=SC2086 # word splitting is the point
    echo "| $name | $(median ${rps[$name]}) | $(median ${p50[$name]}) | $(median ${p99[$name]}) |"
done
# shellcheck disable=SC2086
added=$(awk -v f="$(median ${p50[federated]})" -v d="$(median ${p50[direct]})" 'BEGIN { printf "%.3f", f - d }')
echo
echo "added by the gateway to an upstream call (p50 federated − p50 direct): ${added} ms"
echo "$connections connections, ${seconds}s per run, stateless 2026-07-28 requests, $(nproc) cores, $(date -u +%Y-%m-%d)"
