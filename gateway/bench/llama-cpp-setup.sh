#!/usr/bin/env bash
# Installs the llama.cpp baseline of the local-model benchmark: llama-cpp-python (which builds
# llama.cpp from source for this CPU, GGML_NATIVE) in a venv at .cache/bench/llama-cpp-venv.
# Idempotent: skipped when the stamp file names the pinned version. Without a system cmake, the
# pinned PyPI cmake is installed into the venv first. BENCH_JOBS sets the build parallelism
# (default: all cores). Prints the venv's python on stdout.
set -euo pipefail

repo_root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
venv="$repo_root/.cache/bench/llama-cpp-venv"
pinned="llama-cpp-python==0.3.36"
cmake_pinned="cmake==4.4.4"

if [ "$(cat "$venv/stamp" 2>/dev/null)" != "$pinned" ]; then
    echo "==> building $pinned with ${BENCH_JOBS:-$(nproc)} jobs (llama.cpp from source; minutes)" >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
    export PATH="$venv/bin:$PATH"
    command -v cmake >/dev/null || "$venv/bin/pip" install --quiet --disable-pip-version-check "$cmake_pinned"
    # --no-cache-dir: never reuse a wheel that was built natively for another CPU.
    CMAKE_BUILD_PARALLEL_LEVEL="${BENCH_JOBS:-$(nproc)}" MAKEFLAGS="-j${BENCH_JOBS:-$(nproc)}" \
        CMAKE_ARGS="-DGGML_NATIVE=ON" \
        "$venv/bin/pip" install --quiet --disable-pip-version-check --no-cache-dir "$pinned"
    echo "$pinned" >"$venv/stamp"
fi
echo "$venv/bin/python"
