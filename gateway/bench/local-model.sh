#!/usr/bin/env bash
# Local model speed: the gateway's inference engine against llama.cpp on the same GGUF file, the
# same prompt (same token ids, checked), greedy decoding of the same number of tokens and the
# same thread count, alternating, each run a fresh process. Four engines:
#   kernels           as the gateway runs it: mcp-edge-kernels, the kernel picked for this CPU
#   kernels-portable  the same with MCP_EDGE_KERNEL=portable (what a CPU without AVX2 runs)
#   candle            MCP_EDGE_KERNEL=candle: candle's quantized_llama, as before the kernels
#                     (models.requantize = auto: Q4_1 converted to Q8_0)
#   llama.cpp         llama-cpp-python, built from source for this CPU (the baseline)
# Reports medians of decode tokens/s, time to first token, prompt tokens/s and peak RSS, and
# the ratios to llama.cpp.
#
#   bash gateway/bench/local-model.sh [ROUNDS] [THREADS] [TOKENS] [MODEL]
# RUSTFLAGS (for example "-C target-cpu=x86-64-v3") builds the gateway side for a CPU level;
# it then uses its own target directory.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ensure_apt_packages jq

rounds=${1:-5}
threads=${2:-2}
tokens=${3:-128}
if [ -n "${4:-}" ]; then
    model=$4
    [ -f "$model" ] || die "$model is missing"
else
    ensure_reference_model
    model=$reference_model
fi

target_dir="$repo_root/target"
[ -n "${RUSTFLAGS:-}" ] && target_dir="$repo_root/target/bench-$(echo "$RUSTFLAGS" | tr -c 'a-z0-9' '-')"
step "building the gateway side (RUSTFLAGS=${RUSTFLAGS:-none})"
CARGO_TARGET_DIR="$target_dir" cargo build --release --locked --example local_generate >&2
generate="$target_dir/release/examples/local_generate"
python=$(bash "$repo_root/gateway/bench/llama-cpp-setup.sh")

declare -A decode ttft prefill rss
record() { # ENGINE JSON
    decode[$1]+=" $(jq -r .decode_tok_s <<<"$2")"
    ttft[$1]+=" $(jq -r .ttft_ms <<<"$2")"
    prefill[$1]+=" $(jq -r .prompt_tok_s <<<"$2")"
    rss[$1]+=" $(jq -r .peak_rss_mib <<<"$2")"
}
for round in $(seq "$rounds"); do
    a=$("$generate" "$model" "$threads" "$tokens")
    b=$(MCP_EDGE_KERNEL=portable "$generate" "$model" "$threads" "$tokens")
    c=$(MCP_EDGE_KERNEL=candle "$generate" "$model" "$threads" "$tokens")
    d=$("$python" "$repo_root/gateway/bench/llama_cpp_decode.py" "$model" "$threads" "$tokens")
    [ "$(jq -c .prompt_token_ids <<<"$a")" = "$(jq -c .prompt_token_ids <<<"$d")" ] ||
        die "the engines tokenized the prompt differently: $(jq -c .prompt_token_ids <<<"$a") vs $(jq -c .prompt_token_ids <<<"$d")"
    record kernels "$a"
    record kernels-portable "$b"
    record candle "$c"
    record llama.cpp "$d"
    echo "round $round done" >&2
done

# The medians' arguments are the recorded figures, split on purpose.
# shellcheck disable=SC2086
{
    base_decode=$(median ${decode[llama.cpp]})
    base_ttft=$(median ${ttft[llama.cpp]})
    echo "model $(basename "$model"), $threads threads, $tokens tokens greedy, $rounds rounds, RUSTFLAGS=${RUSTFLAGS:-none}"
    echo "prompt: $(jq -r .prompt_tokens <<<"$d") tokens; weights run as: kernels $(jq -r .quantization <<<"$a"), candle $(jq -r .quantization <<<"$c")"
    printf '| engine | decode tok/s | vs llama.cpp | time to first token ms | vs llama.cpp | prompt tok/s | peak RSS MiB |\n|---|---|---|---|---|---|---|\n'
    for engine in kernels kernels-portable candle llama.cpp; do
        rate=$(median ${decode[$engine]})
        first=$(median ${ttft[$engine]})
        printf '| %s | %.1f | %.2fx | %.0f | %.2fx | %.0f | %.0f |\n' "$engine" "$rate" \
            "$(awk -v a="$rate" -v b="$base_decode" 'BEGIN { print a / b }')" "$first" \
            "$(awk -v a="$first" -v b="$base_ttft" 'BEGIN { print a / b }')" \
            "$(median ${prefill[$engine]})" "$(median ${rss[$engine]})"
    done
}
