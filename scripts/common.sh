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
