#!/usr/bin/env bash
# Idle cost of the running daemon: resident memory, CPU time and wakeups (context switches of
# all its threads) over a quiet window, fresh and after a burst of load; the
# bare-hyper baseline is measured alongside in the same run. Also the stripped binary size.
#
#   bash gateway/bench/idle.sh [SECONDS]
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

window=${1:-60}
ticks_per_second=$(getconf CLK_TCK)

ensure_apt_packages wrk
build_release
start gateway ./target/release/mcp-gateway serve --config "$(gateway_config)"
start baseline ./target/release/examples/baseline_server 127.0.0.1:0

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
switches() { cat /proc/"$1"/task/*/status | awk '/ctxt_switches/ { n += $2 } END { print n }'; }
rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }

# measure LABEL: samples both servers over the same window.
measure() {
    local label=$1
    local t0_g t0_b s0_g s0_b
    t0_g=$(cpu_ticks "$gateway_pid"); s0_g=$(switches "$gateway_pid")
    t0_b=$(cpu_ticks "$baseline_pid"); s0_b=$(switches "$baseline_pid")
    sleep "$window"
    for name in gateway baseline; do
        local pid_var="${name}_pid" t0_var="t0_${name:0:1}" s0_var="s0_${name:0:1}"
        local pid=${!pid_var}
        awk -v l="$label" -v n="$name" -v r="$(rss_kib "$pid")" \
            -v dt="$(( $(cpu_ticks "$pid") - ${!t0_var} ))" -v ds="$(( $(switches "$pid") - ${!s0_var} ))" \
            -v hz="$ticks_per_second" -v w="$window" \
            'BEGIN { printf "| %s | %s | %.2f | %.3f | %.2f |\n", l, n, r / 1024, 100 * dt / hz / w, ds / w }'
    done
}

echo "| state | server | RSS MiB | CPU % over ${window}s | wakeups/s |"
echo "|---|---|---|---|---|"
sleep 2
measure "fresh"
for name in gateway baseline; do
    addr_var="${name}_addr"
    wrk -t1 -c16 -d3s "http://${!addr_var}/health" >/dev/null
done
measure "after a 3 s wrk burst"
echo
echo "stripped release binary: $(stat -c %s target/release/mcp-gateway) bytes ($(du -h target/release/mcp-gateway | cut -f1))"
echo "$(nproc) cores, $(date -u +%Y-%m-%d)"
