"""buildroot-external checked offline (docs/BUILDROOT.md): the package's .mk and .hash agree
with the workspace and with the files they install, and the Kconfig files load and every
defconfig resolves, with kconfiglib against Buildroot's own Config.in.

Buildroot is not on any registry CI can reach, so the Kconfig check against Buildroot runs
when MCP_EDGE_BUILDROOT names a Buildroot tree (the release docs/BUILDROOT.md targets).
Without one, the test checks the tree's own Kconfig symbols and says, as a warning in the
summary, what it could not check and where to point it.
"""

import hashlib
import os
import re
import subprocess
import warnings
from pathlib import Path

import kconfiglib
import pytest

REPO = Path(__file__).resolve().parents[2]
EXTERNAL = REPO / "buildroot-external"
PACKAGE = EXTERNAL / "package" / "mcp-gateway"
DEFCONFIGS = sorted((EXTERNAL / "configs").glob("*_defconfig"))
BUILDROOT = os.environ.get("MCP_EDGE_BUILDROOT")
TARGETED = "Buildroot 2026.08"


def make_variables(path):
    """NAME = value and NAME += value lines of a .mk file (continuations joined)."""
    text = re.sub(r"\\\n\s*", " ", path.read_text())
    values = {}
    for name, op, value in re.findall(r"(?m)^([A-Z0-9_]+)\s*(\+?=)\s*(.*)$", text):
        values[name] = (values.get(name, "") + " " + value).strip() if op == "+=" else value.strip()
    return values


def workspace_version():
    return re.search(r'(?m)^version = "([^"]+)"', (REPO / "Cargo.toml").read_text()).group(1)


def hash_entries():
    entries = {}
    for line in (PACKAGE / "mcp-gateway.hash").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            algo, digest, name = line.split()
            assert algo == "sha256", f"mcp-gateway.hash: use sha256, not {algo}"
            entries[name] = digest
    return entries


def test_the_package_version_is_the_workspace_version():
    mk = make_variables(PACKAGE / "mcp-gateway.mk")
    assert mk["MCP_GATEWAY_VERSION"] == workspace_version(), (
        f"Cargo.toml says {workspace_version()}: set MCP_GATEWAY_VERSION to it and run "
        "scripts/buildroot-tarball.sh BUILDROOT_DIR DL_DIR --update-hash")
    assert "v$(MCP_GATEWAY_VERSION)" in mk["MCP_GATEWAY_SITE"]
    assert (REPO / mk["MCP_GATEWAY_SUBDIR"] / "Cargo.toml").is_file()


def test_the_hash_file_names_the_vendored_tarball_and_the_license():
    mk = make_variables(PACKAGE / "mcp-gateway.mk")
    entries = hash_entries()
    tarballs = [name for name in entries if name.endswith(".tar.gz")]
    assert len(tarballs) == 1, f"mcp-gateway.hash must name one source tarball, names {tarballs}"
    match = re.fullmatch(r"mcp-gateway-(.+)-cargo(\d+)\.tar\.gz", tarballs[0])
    assert match, f"{tarballs[0]} is not named as Buildroot names a vendored cargo tarball"
    assert match.group(1) == mk["MCP_GATEWAY_VERSION"], (
        f"mcp-gateway.hash is for {match.group(1)}, the package is {mk['MCP_GATEWAY_VERSION']}: "
        "run scripts/buildroot-tarball.sh BUILDROOT_DIR DL_DIR --update-hash")
    if BUILDROOT:
        download_mk = (Path(BUILDROOT) / "package" / "pkg-download.mk").read_text()
        suffix = re.search(r"(?m)^BR_FMT_VERSION_cargo = -cargo(\d+)$", download_mk).group(1)
        assert match.group(2) == suffix, (
            f"this Buildroot names vendored tarballs -cargo{suffix}; mcp-gateway.hash has "
            f"-cargo{match.group(2)}: run scripts/buildroot-tarball.sh {BUILDROOT} DL_DIR --update-hash")
    for name in mk["MCP_GATEWAY_LICENSE_FILES"].split():
        digest = hashlib.sha256((REPO / name).read_bytes()).hexdigest()
        assert entries.get(name) == digest, f"mcp-gateway.hash: {name} is now sha256 {digest}"


def test_every_file_the_package_installs_is_in_the_source():
    mk_text = (PACKAGE / "mcp-gateway.mk").read_text()
    paths = set(re.findall(r"\$\(@D\)/([\w./-]+)", mk_text))
    units = make_variables(PACKAGE / "mcp-gateway.mk")["MCP_GATEWAY_UNITS"].split()
    paths |= {f"systemd/{unit}" for unit in units}
    paths.discard("systemd/")
    missing = sorted(p for p in paths if not (REPO / p).is_file())
    assert not missing, f"mcp-gateway.mk installs files the source does not have: {missing}"
    assert "rootfs-overlay/usr/lib/mcp-edge/data-init" in paths


def test_the_tree_has_no_copy_of_the_shared_files():
    shared = {p.read_bytes(): p for d in ("systemd", "rootfs-overlay", "rauc")
              for p in (REPO / d).rglob("*") if p.is_file()}
    copies = [(str(p.relative_to(REPO)), str(shared[p.read_bytes()].relative_to(REPO)))
              for p in EXTERNAL.rglob("*") if p.is_file() and p.read_bytes() in shared]
    assert not copies, f"buildroot-external copies shared files; install them from the source: {copies}"


def defconfig_assignments(path):
    """SYMBOL -> value ('n' for '# SYMBOL is not set') of a defconfig."""
    values = {}
    for line in path.read_text().splitlines():
        if m := re.fullmatch(r"(BR2_\w+)=(.*)", line):
            values[m.group(1)] = m.group(2).strip('"')
        elif m := re.fullmatch(r"# (BR2_\w+) is not set", line):
            values[m.group(1)] = "n"
    return values


def load_kconfig(monkeypatch, top, env):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CONFIG_", "")  # Buildroot's symbols carry no CONFIG_ prefix
    return kconfiglib.Kconfig(str(top), warn_to_stderr=False)


def our_warnings(kconfig):
    return [w for w in kconfig.warnings if str(EXTERNAL) in w or "MCP_EDGE" in w or "MCP_GATEWAY" in w]


def test_there_is_a_defconfig_for_each_board():
    assert [p.name for p in DEFCONFIGS] == [
        "mcp_edge_qemu_aarch64_virt_defconfig", "mcp_edge_qemu_x86_64_defconfig",
        "mcp_edge_raspberrypi4_64_defconfig"]


@pytest.mark.parametrize("defconfig", DEFCONFIGS, ids=[p.name for p in DEFCONFIGS])
def test_the_defconfig_resolves_with_nothing_unknown_or_dropped(defconfig, tmp_path, monkeypatch):
    if not BUILDROOT:
        kconfig = load_kconfig(monkeypatch, EXTERNAL / "Config.in", {"BR2_EXTERNAL_MCP_EDGE_PATH": str(EXTERNAL)})
        ours = {name for name in kconfig.syms if name.startswith("BR2_PACKAGE_MCP_GATEWAY")}
        used = {name for name in defconfig_assignments(defconfig) if name.startswith("BR2_PACKAGE_MCP_GATEWAY")}
        assert used and used <= ours, f"{defconfig.name} sets symbols the tree does not define: {used - ours}"
        assert not our_warnings(kconfig), our_warnings(kconfig)
        warnings.warn(f"{defconfig.name}: checked only buildroot-external's own Kconfig symbols. "
                      f"Set MCP_EDGE_BUILDROOT to a {TARGETED} tree to check that every symbol "
                      "resolves against Buildroot's Config.in.")
        return
    buildroot = Path(BUILDROOT)
    out = tmp_path / "output"
    subprocess.run(["bash", str(buildroot / "support" / "scripts" / "br2-external"), "-d", str(out), str(EXTERNAL)],
                   check=True, cwd=buildroot)
    monkeypatch.chdir(buildroot)
    kconfig = load_kconfig(monkeypatch, buildroot / "Config.in", {
        "BR2_BASE_DIR": str(out), "BASE_DIR": str(out), "BR2_DEFCONFIG": str(defconfig),
        "BR2_VERSION_FULL": "check", "HOSTARCH": "x86_64", "HOST_GCC_VERSION": "12",
        "BR2_HIDE_SECONDARY_TARGET_OPTIONS": "", "BR2_SKIP_LEGACY": "",
        "BR2_EXTERNAL_MCP_EDGE_PATH": str(EXTERNAL)})
    assert not our_warnings(kconfig), f"Kconfig warnings about buildroot-external: {our_warnings(kconfig)}"
    kconfig.warnings.clear()
    kconfig.load_config(str(defconfig))
    assert not kconfig.warnings, f"{defconfig.name}: {kconfig.warnings}"
    unknown = [name for name in defconfig_assignments(defconfig) if name not in kconfig.syms]
    assert not unknown, f"{defconfig.name} sets symbols this Buildroot does not know: {unknown}"
    dropped = {name: (value, kconfig.syms[name].str_value)
               for name, value in defconfig_assignments(defconfig).items()
               if kconfig.syms[name].str_value != value}
    assert not dropped, f"{defconfig.name}: values Kconfig did not keep (wanted, got): {dropped}"
