#!/usr/bin/env bash
# GET /health throughput and latency on loopback, gateway against the bare-hyper baseline,
# alternating A B A B so that drift on a shared machine hits both alike.
#
#   bash gateway/bench/health-load.sh [ROUNDS] [SECONDS] [CONNECTIONS]
#
# Prints a Markdown table for docs/BENCHMARKS.md.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

rounds=${1:-5}
seconds=${2:-10}
connections=${3:-32}

ensure_apt_packages wrk
build_release
start gateway ./target/release/mcp-gateway serve --config "$(gateway_config)"
start baseline ./target/release/examples/baseline_server 127.0.0.1:0

# to_ms VALUE: wrk prints latencies as 812.00us, 1.23ms or 1.02s.
to_ms() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000; print n }'; }

declare -A rps p50 p99
for round in $(seq "$rounds"); do
    for name in gateway baseline; do
        addr_var="${name}_addr"
        out=$(wrk -t1 -c"$connections" -d"${seconds}s" --latency "http://${!addr_var}/health")
        rps[$name]+=" $(awk '/^Requests\/sec/ { print $2 }' <<<"$out")"
        p50[$name]+=" $(to_ms "$(awk '$1 == "50%" { print $2 }' <<<"$out")")"
        p99[$name]+=" $(to_ms "$(awk '$1 == "99%" { print $2 }' <<<"$out")")"
        errors=$(grep -E 'Non-2xx|Socket errors' <<<"$out" || true)
        [ -z "$errors" ] || echo "round $round $name: $errors" >&2
    done
    echo "round $round done" >&2
done

ratios=()
read -ra g <<<"${rps[gateway]}"
read -ra b <<<"${rps[baseline]}"
for i in "${!g[@]}"; do ratios+=("$(awk -v a="${g[$i]}" -v b="${b[$i]}" 'BEGIN { printf "%.3f", a / b }')"); done

echo "| server | requests/s (median of $rounds) | p50 ms | p99 ms |"
echo "|---|---|---|---|"
for name in gateway baseline; do
    # shellcheck disable=SC2086 # word splitting is the point
    echo "| $name | $(median ${rps[$name]}) | $(median ${p50[$name]}) | $(median ${p99[$name]}) |"
done
echo
echo "gateway/baseline requests/s, per round: ${ratios[*]}; median $(median "${ratios[@]}")"
echo "wrk -t1 -c$connections -d${seconds}s --latency, $(nproc) cores, $(date -u +%Y-%m-%d)"
