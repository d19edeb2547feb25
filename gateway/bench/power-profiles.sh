#!/usr/bin/env bash
# CPU time per completion in the performance and low-power profiles: two gateways with the
# reference model, one started in each profile (the local model's thread count is fixed at
# start: one per core in performance, half the cores in low-power), the same greedy completion
# sent to each in turn, ROUNDS rounds of COUNT completions. CPU seconds are the gateway
# process's utime+stime (all threads) over each batch, from /proc/PID/stat. Where the machine
# has cpufreq, the profiles also differ in governor and frequency ceiling; that needs
# power.cpufreq = "direct" and root, which this script does not ask for.
#
#   bash gateway/bench/power-profiles.sh [ROUNDS] [COUNT] [MAX_TOKENS]
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ensure_apt_packages jq curl

rounds=${1:-5}
count=${2:-5}
max_tokens=${3:-64}
ensure_reference_model
step "building the release binary"
cargo build --release --locked --bin mcp-gateway >&2
ticks_per_second=$(getconf CLK_TCK)

profiles=(performance low-power)
for profile in "${profiles[@]}"; do
    config="$bench_tmp/$profile.toml"
    printf '[gateway]\nbind_address = "127.0.0.1:0"\nrequest_timeout_ms = 600000\n[models]\nmodel_path = "%s"\n[power]\nprofile = "%s"\n' \
        "$reference_model" "$profile" >"$config"
    start "${profile/-/_}" ./target/release/mcp-gateway serve --config "$config"
done
for profile in "${profiles[@]}"; do
    for _ in $(seq 300); do grep -q "local model warmed up" "$bench_tmp/${profile/-/_}.log" && break; sleep 0.2; done
done

body=$(jq -cn --argjson n "$max_tokens" '{messages: [{role: "user", content: "Explain in a few sentences why the sky is blue."}],
    max_tokens: $n, temperature: 0, backend: "local"}')
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

declare -A cpu wall tokens
for round in $(seq "$rounds"); do
    for profile in "${profiles[@]}"; do
        name=${profile/-/_}; pid_var="${name}_pid"; addr_var="${name}_addr"
        t0=$(cpu_ticks "${!pid_var}"); start_ns=$(date +%s%N); n=0
        for _ in $(seq "$count"); do
            answer=$(curl -sf -H 'Content-Type: application/json' -d "$body" "http://${!addr_var}/v1/chat/completions") ||
                die "the $profile gateway did not answer: $(tail -n 5 "$bench_tmp/$name.log")"
            n=$(( n + $(jq .usage.completion_tokens <<<"$answer") ))
        done
        dt=$(( $(cpu_ticks "${!pid_var}") - t0 ))
        cpu[$profile]+=" $(awk -v t="$dt" -v hz="$ticks_per_second" -v c="$count" 'BEGIN { print t / hz / c }')"
        wall[$profile]+=" $(awk -v ns="$(( $(date +%s%N) - start_ns ))" -v c="$count" 'BEGIN { print ns / 1e9 / c }')"
        tokens[$profile]+=" $(( n / count ))"
    done
    echo "round $round done" >&2
done

echo "model $(basename "$reference_model"), $rounds rounds of $count completions, max_tokens $max_tokens, greedy; $(nproc) cores; cpufreq policies: $(ls /sys/devices/system/cpu/cpufreq 2>/dev/null | grep -c policy || true)"
printf '| profile | model threads | tokens per completion | CPU s per completion | wall s per completion | CPU vs performance |\n|---|---|---|---|---|---|\n'
base=$(median ${cpu[performance]})
for profile in "${profiles[@]}"; do
    c=$(median ${cpu[$profile]})
    status=$(curl -sf "http://$(v="${profile/-/_}_addr"; echo "${!v}")/v1/power")
    printf '| %s | %s | %s | %.3f | %.3f | %.2fx |\n' "$profile" "$(jq .model_threads <<<"$status")" \
        "$(median ${tokens[$profile]})" "$c" "$(median ${wall[$profile]})" \
        "$(awk -v a="$c" -v b="$base" 'BEGIN { print a / b }')"
done
