#!/usr/bin/env bash
# Fuzzes every parser that takes outside input (fuzz/, docs/FUZZING.md) with libFuzzer through
# cargo fuzz, each target for SECONDS, and prints one line per target: executions, seconds,
# corpus size, crashes. Exits non-zero, naming the input, if any target crashes.
#
#   bash scripts/fuzz.sh [SECONDS [PROFILE]]    (default 20 s, release)
#
# PROFILE `release` builds optimised (cargo fuzz -O), for the long runs; `dev` builds without
# optimisation, which takes a fraction of the CPU time to build and runs several times fewer
# executions per second: the test command's short run uses it.
#
# cargo-fuzz is installed from crates.io into .cache/cargo-fuzz. The targets are built without
# a sanitizer (`-s none`: safe Rust needs none, and the stable toolchain has no sanitizer
# runtimes) but with libFuzzer's coverage instrumentation, optimised. Each target starts from
# its committed corpus (fuzz/corpus/TARGET, read only) and writes what it finds to
# .cache/fuzz/corpus/TARGET; crashing inputs go to .cache/fuzz/artifacts/TARGET/. To keep what
# a longer run found: merge it into fuzz/corpus (docs/FUZZING.md).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$repo_root"
require_cargo

seconds=${1:-20}
profile=${2:-release}
case "$profile" in
    release) build_flag=-O binaries=fuzz/target/x86_64-unknown-linux-gnu/release ;;
    dev) build_flag=-D binaries=fuzz/target/x86_64-unknown-linux-gnu/debug ;;
    *) die "unknown profile '$profile' (release or dev)" ;;
esac
cargo_fuzz_version=0.13.2
tools=$repo_root/.cache/cargo-fuzz
work=$repo_root/.cache/fuzz
if [ "$("$tools/bin/cargo-fuzz" --version 2>/dev/null)" != "cargo-fuzz $cargo_fuzz_version" ]; then
    step "installing cargo-fuzz $cargo_fuzz_version into $tools"
    cargo install --quiet --locked --version "$cargo_fuzz_version" --root "$tools" cargo-fuzz
fi
export PATH=$tools/bin:$PATH

step "building the fuzz targets (cargo fuzz build -s none $build_flag)"
cargo fuzz build --fuzz-dir fuzz -s none "$build_flag" >&2
targets=$(cargo fuzz list --fuzz-dir fuzz)

printf '%-22s %12s %8s %8s %8s\n' target executions seconds corpus crashes
failed=()
for target in $targets; do
    # This run's crashes only: a crash of an earlier run is in its log and the note it made.
    rm -rf "$work/artifacts/$target"
    mkdir -p "$work/corpus/$target" "$work/artifacts/$target" "$work/logs"
    log=$work/logs/$target.log
    status=0
    "$binaries/$target" -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 \
        -artifact_prefix="$work/artifacts/$target/" -print_final_stats=1 \
        "$work/corpus/$target" "fuzz/corpus/$target" >"$log" 2>&1 || status=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log")
    crashes=$(find "$work/artifacts/$target" -type f | wc -l)
    printf '%-22s %12s %8s %8s %8s\n' "$target" "${runs:-?}" "${took:-?}" \
        "$(find "$work/corpus/$target" "fuzz/corpus/$target" -type f | wc -l)" "$crashes"
    if [ "$status" -ne 0 ]; then
        failed+=("$target (exit $status; its log: $log)")
    fi
done
[ ${#failed[@]} -eq 0 ] || die "fuzzing found a crash in: ${failed[*]}; the inputs are in $work/artifacts"
