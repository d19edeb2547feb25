#!/usr/bin/env bash
# Installs the llama.cpp baseline of the local-model benchmark: llama-cpp-python (which builds
# llama.cpp from source for this CPU) in a venv under .cache/bench. Idempotent: skipped when
# the pinned version is already installed. BENCH_JOBS sets the build parallelism (default: all
# cores). Prints the venv's python.
set -euo pipefail

repo_root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
venv="$repo_root/.cache/bench/llama-cpp-venv"
pinned="llama-cpp-python==0.3.36"
cmake_pinned="cmake==4.4.4"

if [ "$(cat "$venv/stamp" 2>/dev/null)" != "$pinned" ]; then
    echo "==> building $pinned (llama.cpp from source; several minutes)" >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$cmake_pinned"
    PATH="$venv/bin:$PATH" CMAKE_BUILD_PARALLEL_LEVEL="${BENCH_JOBS:-$(nproc)}" \
        CMAKE_ARGS="-DGGML_NATIVE=ON" \
        "$venv/bin/pip" install --quiet --disable-pip-version-check --no-cache-dir "$pinned"
    echo "$pinned" >"$venv/stamp"
fi
echo "$venv/bin/python"
