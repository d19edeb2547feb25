"""One greedy generation on llama.cpp (through llama-cpp-python), timed: the baseline side of
gateway/bench/local-model.sh. Prints one JSON line with the same fields as
`cargo run --release --example local_generate`.

    python llama_cpp_decode.py MODEL.gguf [THREADS] [TOKENS] [PROMPT]
"""

import json
import resource
import sys
import time

from llama_cpp import Llama


def main():
    path = sys.argv[1]
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    tokens = int(sys.argv[3]) if len(sys.argv) > 3 else 128
    prompt = sys.argv[4] if len(sys.argv) > 4 else "Write a short story about a robot who learns to garden."
    started = time.perf_counter()
    llm = Llama(model_path=path, n_threads=threads, n_threads_batch=threads, n_ctx=2048,
                n_batch=256, verbose=False)
    load_ms = (time.perf_counter() - started) * 1000
    # The same ChatML text the candle side renders from the model's template.
    text = (f"<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
            f"<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n")
    prompt_tokens = llm.tokenize(text.encode(), add_bos=False, special=True)
    generated = []
    started = time.perf_counter()
    first = None
    # Greedy (top_k 1), no repetition penalty, and on past the end-of-turn token: a fixed length.
    for token in llm.generate(prompt_tokens, top_k=1, top_p=1.0, temp=0.0, repeat_penalty=1.0):
        if first is None:
            first = time.perf_counter()
        generated.append(token)
        if len(generated) == tokens:
            break
    done = time.perf_counter()
    ttft = (first - started) * 1000
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({
        "engine": "llama.cpp",
        "threads": threads,
        "load_ms": round(load_ms),
        "prompt_tokens": len(prompt_tokens),
        "prompt_token_ids": prompt_tokens,
        "ttft_ms": round(ttft),
        "prompt_tok_s": len(prompt_tokens) * 1000 / ttft,
        "decode_tok_s": (len(generated) - 1) / (done - first),
        "generated": len(generated),
        "peak_rss_mib": peak_kib / 1024,
        "text": llm.detokenize(generated).decode(errors="replace"),
    }))


if __name__ == "__main__":
    main()
