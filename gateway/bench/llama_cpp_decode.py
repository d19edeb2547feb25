"""One greedy generation on llama.cpp (through llama-cpp-python), timed: the baseline side of
gateway/bench/local-model.sh. Loads the GGUF, renders a fixed ChatML prompt, generates exactly
--tokens tokens greedily (past end-of-generation tokens; "eog_at" reports where one was first
produced, null if never) and prints one JSON line: load time, prompt tokens, time to first
token (prompt eval + first sample), prompt and decode tokens/s (decode over the N-1 tokens
after the first), peak RSS.

    python llama_cpp_decode.py --model M.gguf [--threads T] [--tokens N] [--prompt TEXT]
    python llama_cpp_decode.py M.gguf [T] [N] [TEXT]      (positional form, as local-model.sh)
"""

import argparse
import json
import resource
import time

import llama_cpp
from llama_cpp import Llama

TEMPLATE = ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
            "<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--tokens", type=int, default=128)
    p.add_argument("--prompt", default="Write a short story about a robot who learns to garden.")
    p.add_argument("positional", nargs="*", metavar="MODEL [THREADS [TOKENS [PROMPT]]]")
    a = p.parse_args()
    for name, value in zip(("model", "threads", "tokens", "prompt"), a.positional):
        setattr(a, name, value if name in ("model", "prompt") else int(value))
    if not a.model:
        p.error("--model is required")
    return a


def main():
    a = parse_args()
    started = time.perf_counter()
    llm = Llama(model_path=a.model, n_threads=a.threads, n_threads_batch=a.threads, n_ctx=2048,
                seed=42, verbose=False)
    load_ms = (time.perf_counter() - started) * 1000
    prompt_tokens = llm.tokenize(TEMPLATE.format(prompt=a.prompt).encode(), add_bos=False,
                                 special=True)

    generated, first, eog_at = [], None, None
    started = time.perf_counter()
    # Greedy, no repetition penalty; generate() itself never stops, so the length is fixed.
    for token in llm.generate(prompt_tokens, top_k=1, top_p=1.0, min_p=0.0, temp=0.0,
                              repeat_penalty=1.0):
        if first is None:
            first = time.perf_counter()
        if eog_at is None and llama_cpp.llama_vocab_is_eog(llm._model.vocab, token):
            eog_at = len(generated)
        generated.append(token)
        if len(generated) == a.tokens:
            break
    done = time.perf_counter()

    ttft = first - started
    print(json.dumps({
        "engine": "llama.cpp",
        "threads": a.threads,
        "load_ms": round(load_ms, 1),
        "prompt_tokens": len(prompt_tokens),
        "prompt_token_ids": prompt_tokens,
        "ttft_ms": round(ttft * 1000, 1),
        "prompt_tok_s": round(len(prompt_tokens) / ttft, 1),
        "decode_tok_s": round((len(generated) - 1) / (done - first), 1) if len(generated) > 1 else None,
        "generated": len(generated),
        "eog_at": eog_at,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "text": llm.detokenize(generated).decode(errors="replace"),
    }))


if __name__ == "__main__":
    main()
