#!/usr/bin/env bash
# Idle cost of the running daemon: resident memory (all of it, and the anonymous part: heap,
# stacks, written data; the rest is pages of the binary and libraries, clean and shared), CPU
# time and wakeups (context switches of all its threads) over a quiet window, fresh and after a
# burst of load, without and with the reference model loaded; the bare-hyper baseline is
# measured alongside in the same run, and so is the gateway built without default features
# (`minimal`: no TPM stack, local model, zstd or TLS; its build is footprint.sh's). Also the
# stripped binary sizes.
#
#   bash gateway/bench/idle.sh [SECONDS]
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

window=${1:-60}
ticks_per_second=$(getconf CLK_TCK)

ensure_apt_packages wrk
ensure_reference_model
build_release
minimal_binary=$repo_root/.cache/footprint/minimal/release/mcp-gateway
step "release build without default features ($minimal_binary)"
CARGO_TARGET_DIR=$repo_root/.cache/footprint/minimal cargo build --release --locked \
    -p mcp-edge-gateway --bin mcp-gateway --no-default-features >&2
start gateway ./target/release/mcp-gateway serve --config "$(gateway_config)"
start minimal "$minimal_binary" serve --config "$(gateway_config)"
model_config="$bench_tmp/model.toml"
printf '[gateway]\nbind_address = "127.0.0.1:0"\n[models]\nmodel_path = "%s"\n' "$reference_model" >"$model_config"
start gateway_model ./target/release/mcp-gateway serve --config "$model_config"
start baseline ./target/release/examples/baseline_server 127.0.0.1:0
servers=(gateway minimal gateway_model baseline)
# The model's warm-up (one short generation at start) ends before the first window.
for _ in $(seq 100); do grep -q "local model warmed up" "$bench_tmp/gateway_model.log" && break; sleep 0.2; done

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
switches() { cat /proc/"$1"/task/*/status | awk '/ctxt_switches/ { n += $2 } END { print n }'; }
status_kib() { awk -v f="$2" '$1 == f":" { print $2 }' "/proc/$1/status"; }

# measure LABEL: samples every server over the same window.
measure() {
    local label=$1 name pid
    declare -A t0 s0
    for name in "${servers[@]}"; do
        pid_var="${name}_pid"; pid=${!pid_var}
        t0[$name]=$(cpu_ticks "$pid"); s0[$name]=$(switches "$pid")
    done
    sleep "$window"
    for name in "${servers[@]}"; do
        pid_var="${name}_pid"; pid=${!pid_var}
        awk -v l="$label" -v n="${name/_/ + }" -v r="$(status_kib "$pid" VmRSS)" -v a="$(status_kib "$pid" RssAnon)" \
            -v dt="$(( $(cpu_ticks "$pid") - ${t0[$name]} ))" -v ds="$(( $(switches "$pid") - ${s0[$name]} ))" \
            -v hz="$ticks_per_second" -v w="$window" \
            'BEGIN { printf "| %s | %s | %.2f | %.2f | %.3f | %.2f |\n", l, n, r / 1024, a / 1024, 100 * dt / hz / w, ds / w }'
    done
}

echo "| state | server | RSS MiB | of it anonymous MiB | CPU % over ${window}s | wakeups/s |"
echo "|---|---|---|---|---|---|"
sleep 2
measure "fresh"
for name in "${servers[@]}"; do
    addr_var="${name}_addr"
    wrk -t1 -c16 -d3s "http://${!addr_var}/health" >/dev/null
done
measure "after a 3 s wrk burst"
echo
echo "stripped release binary: $(stat -c %s target/release/mcp-gateway) bytes, minimal: $(stat -c %s "$minimal_binary") bytes"
echo "$(nproc) cores, $(date -u +%Y-%m-%d)"
