#!/usr/bin/env bash
# The offline queue under load, on the disk this repository sits on:
#   enqueue  acknowledged (202) deferred completions per second while the cloud is down,
#            against the baseline of the same request without `defer` (answered 503 at once:
#            the same HTTP, routing and breaker path without the durable write);
#   drain    entries delivered per second by one forced sync once the cloud is back, for
#            sync_strategy = one_by_one (the baseline) and batched (16 in flight);
#   ratio    raw / stored bytes of the queued requests (zstd level 3).
# Each round starts, per strategy, a fresh gateway, queue file and cloud peer
# (gateway/examples/openai_fixed_answer.rs).
#
#   bash gateway/bench/offline-queue.sh [ROUNDS] [SECONDS] [CONNECTIONS]
#
# Prints a Markdown table for docs/BENCHMARKS.md.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

rounds=${1:-5}
seconds=${2:-3}
connections=${3:-8}

ensure_apt_packages wrk jq curl
step "building release binaries"
cargo build --release --locked --bin mcp-gateway --example openai_fixed_answer >&2

# A realistic deferred request: a device asking the cloud about a reading (338 bytes).
body='{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are the maintenance assistant of an edge device in a water pumping station."},{"role":"user","content":"Pump 7: vibration 4.7 mm/s, temperature 47.3 C, pressure 3.2 bar, running 1724 h since service. Is maintenance due?"}],"max_tokens":256,"temperature":0.2,"defer":true}'
lua() { # FILE BODY
    printf 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = [[%s]]\n' "$2" >"$1"
}
lua "$bench_tmp/defer.lua" "$body"
lua "$bench_tmp/plain.lua" "${body/,\"defer\":true/}"

wrk_rps() { # ADDR LUA
    wrk -t1 -c"$connections" -d"${seconds}s" -s "$2" "http://$1/v1/chat/completions" |
        awk '/^Requests\/sec/ { print $2 }'
}

declare -A enqueue plain drain
ratios=()
for round in $(seq "$rounds"); do
    for strategy in one_by_one batched; do
        start cloud ./target/release/examples/openai_fixed_answer 127.0.0.1:0 --down
        config="$bench_tmp/$round-$strategy.toml"
        cat >"$config" <<EOF
[gateway]
bind_address = "127.0.0.1:0"
max_connections = 256
[models]
cloud_endpoint = "http://$cloud_addr/v1"
cloud_retries = 0
circuit_breaker_failures = 1
circuit_breaker_cooldown_ms = 100
[offline]
persistence_path = "$bench_tmp/$round-$strategy.sqlite"
queue_size = 1000000
sync_interval_seconds = 86400
sync_strategy = "$strategy"
sync_batch_size = 16
EOF
        start gateway ./target/release/mcp-gateway serve --config "$config"
        if [ "$strategy" = batched ]; then
            plain[$strategy]+=" $(wrk_rps "$gateway_addr" "$bench_tmp/plain.lua")"
            enqueue[$strategy]+=" $(wrk_rps "$gateway_addr" "$bench_tmp/defer.lua")"
        else
            enqueue[$strategy]+=" $(wrk_rps "$gateway_addr" "$bench_tmp/defer.lua")"
            plain[$strategy]+=" $(wrk_rps "$gateway_addr" "$bench_tmp/plain.lua")"
        fi
        status=$(curl -fsS "http://$gateway_addr/v1/queue/status")
        queued=$(jq .queued <<<"$status")
        ratios+=("$(jq '.raw_bytes / .bytes' <<<"$status")")
        kill -USR1 "$cloud_pid"
        sleep 0.3 # the breaker's cooldown
        started=$(date +%s.%N)
        until [ "$(curl -fsS -X POST "http://$gateway_addr/v1/queue/sync" | jq .remaining)" = 0 ]; do :; done
        ended=$(date +%s.%N)
        drain[$strategy]+=" $(awk -v n="$queued" -v a="$started" -v b="$ended" 'BEGIN { printf "%.0f", n / (b - a) }')"
        echo "round $round $strategy: $queued queued" >&2
        kill "$gateway_pid" "$cloud_pid"
        wait "$gateway_pid" "$cloud_pid" 2>/dev/null || true
    done
done

# shellcheck disable=SC2086 # word splitting is the point
{
    all_enqueue="${enqueue[one_by_one]} ${enqueue[batched]}"
    all_plain="${plain[one_by_one]} ${plain[batched]}"
    echo "| measure | median of $rounds rounds | baseline | ratio |"
    echo "|---|---|---|---|"
    echo "| durable enqueues/s (202), $connections connections | $(median $all_enqueue) | $(median $all_plain) (same request, no defer: 503) | $(awk -v a="$(median $all_enqueue)" -v b="$(median $all_plain)" 'BEGIN { printf "%.2f", a / b }') |"
    echo "| drain, entries/s, batched (16) | $(median ${drain[batched]}) | $(median ${drain[one_by_one]}) (one_by_one) | $(awk -v a="$(median ${drain[batched]})" -v b="$(median ${drain[one_by_one]})" 'BEGIN { printf "%.2f", a / b }') |"
    echo "| stored size of queued requests, raw/zstd | $(median "${ratios[@]}")x | | |"
}
echo
echo "wrk -t1 -c$connections -d${seconds}s, $(nproc) cores, $(df -T "$bench_tmp" | awk 'NR == 2 { print $2 }') under the queue, $(date -u +%Y-%m-%d)"
