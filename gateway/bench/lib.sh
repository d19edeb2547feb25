# Helpers for the benchmark scripts beside this file. Source it; do not run it.

source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/common.sh"
cd "$repo_root"

bench_tmp=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$bench_tmp"
}
trap cleanup EXIT

build_release() {
    step "building release binaries"
    cargo build --release --locked --bin mcp-gateway --example baseline_server >&2
}

# start NAME COMMAND...: starts a server that logs `listening address=IP:PORT` on stderr,
# waits for that line, and sets ${NAME}_pid and ${NAME}_addr.
start() {
    local name=$1; shift
    local log="$bench_tmp/$name.log"
    "$@" 2>"$log" >/dev/null &
    local pid=$!
    pids+=("$pid")
    local addr=""
    for _ in $(seq 100); do
        addr=$(grep -o 'listening address=[^ ]*' "$log" | head -n1 | cut -d= -f2 || true)
        [ -n "$addr" ] && break
        sleep 0.1
    done
    [ -n "$addr" ] || die "$name did not start: $(cat "$log")"
    printf -v "${name}_pid" '%s' "$pid"
    printf -v "${name}_addr" '%s' "$addr"
}

# gateway_config: a config file on a free port, otherwise the embedded defaults.
gateway_config() {
    local file="$bench_tmp/mcp-edge.toml"
    printf '[gateway]\nbind_address = "127.0.0.1:0"\nmax_connections = 256\n' >"$file"
    echo "$file"
}

# median NUMBER...
median() {
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
