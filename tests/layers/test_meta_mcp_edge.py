"""meta-mcp-edge checked offline by the OpenEmbedded tools themselves (docs/YOCTO.md): the
crate list in sync with Cargo.lock, oelint-adv on every recipe and bbappend for both release
series, kas dump of every kas file, and the layer reusing the shared units and overlay.

What cannot run here (bitbake -p against oe-core, a real build) is described in
docs/YOCTO.md with the commands to run it.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
LAYER = REPO / "meta-mcp-edge"
BIN = Path(sys.executable).parent

# Rules switched off for the whole layer, each for a reason:
SUPPRESSED = [
    # HOMEPAGE is pinged over the network, which CI does not have.
    "oelint.vars.homepageping",
    # Asks bbappends to change other recipes only under a MACHINE or DISTRO override. Ours
    # are one line that requires their .inc only when DISTRO_FEATURES has "mcp-edge" (as
    # meta-rauc's do with "rauc"); oelint judges the .inc as if always included.
    "oelint.vars.noncoreoverride",
    # mcp-gateway-crates.inc is written exactly as oe-core's do_update_crates writes it
    # (SRC_URI += " \ ...), so that `bitbake -c update_crates` gives the same file.
    "oelint.vars.inconspaces",
    "oelint.vars.notneededspace",
]


def recipes():
    return sorted(str(p) for p in LAYER.rglob("*") if p.suffix in (".bb", ".bbappend"))


def test_the_crate_list_matches_cargo_lock():
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "yocto-crates-inc.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_recipe_version_is_the_workspace_version():
    cargo = (REPO / "Cargo.toml").read_text()
    version = re.search(r'(?m)^version = "([^"]+)"', cargo).group(1)
    recipe = LAYER / "recipes-gateway" / "mcp-gateway" / f"mcp-gateway_{version}.bb"
    found = sorted(p.name for p in (LAYER / "recipes-gateway" / "mcp-gateway").glob("mcp-gateway_*.bb"))
    assert recipe.exists(), f"Cargo.toml says {version}; rename the recipe {found} to {recipe.name}"


@pytest.mark.parametrize("release", ["scarthgap", "wrynose"])
def test_oelint_adv_finds_nothing(release):
    argv = [str(BIN / "oelint-adv"), "--quiet", "--mode", "all", f"--release={release}",
            f"--constantmods=+{LAYER / '.oelint-constants.json'}"]
    argv += [f"--suppress={rule}" for rule in SUPPRESSED]
    result = subprocess.run(argv + recipes(), capture_output=True, text=True, cwd=LAYER)
    findings = (result.stdout + result.stderr).strip()
    assert result.returncode == 0 and not findings, f"oelint-adv ({release}) says, fix these:\n{findings}"


def kas_files():
    return sorted(p for p in (LAYER / "kas").glob("*.yml") if p.name != "common.yml")


def kas_repos(config):
    """The repositories a kas configuration and its includes name, with their settings."""
    repos = {}
    for include in config.get("header", {}).get("includes", []):
        repos.update(kas_repos(yaml.safe_load((REPO / include).read_text())))
    for name, repo in (config.get("repos") or {}).items():
        repos[name] = {**repos.get(name, {}), **(repo or {})}
    return repos


@pytest.mark.parametrize("kas_file", kas_files(), ids=lambda p: p.name)
def test_kas_dump_resolves_every_kas_file(kas_file, tmp_path):
    """kas checks the file against its schema, resolves the includes and prints the whole
    configuration. CI cannot reach the layers' git servers, so an extra kas file (beside this
    checkout's, as kas requires) points each remote repository at an empty stand-in: the
    layers' revisions are then checked here from the file, not by cloning them."""
    config = yaml.safe_load(kas_file.read_text())
    repos = kas_repos(config)
    remote = {name: repo for name, repo in repos.items() if repo.get("url")}
    for name, repo in remote.items():
        assert re.fullmatch(r"[0-9a-f]{40}", str(repo.get("commit", ""))), f"{kas_file.name}: pin {name} to a commit"
        assert repo.get("branch"), f"{kas_file.name}: name {name}'s branch"
    stand_in = tmp_path / "stand-in"
    stand_in.mkdir()
    offline = REPO / ".cache" / f"kas-offline-{kas_file.stem}.yml"
    offline.parent.mkdir(exist_ok=True)
    offline.write_text(yaml.safe_dump({"header": {"version": 14},
                                       "repos": {name: {"url": None, "path": str(stand_in)} for name in remote}}))
    try:
        result = subprocess.run([str(BIN / "kas"), "dump", "--skip", "repos_checkout", f"{kas_file}:{offline}"],
                                capture_output=True, text=True, cwd=tmp_path,
                                env=dict(os.environ, KAS_WORK_DIR=str(tmp_path)))
    finally:
        offline.unlink()
    assert result.returncode == 0, f"kas dump {kas_file.name}:\n{result.stderr}"
    dump = yaml.safe_load(result.stdout)
    assert dump["distro"] == "mcp-edge" and "mcp-edge-image" in dump["target"], dump
    assert dump["machine"] == config["machine"], dump
    assert "meta-mcp-edge" in dump["repos"]["mcp-edge"]["layers"]


def test_the_layer_has_no_copy_of_the_units_or_the_overlay():
    """The recipe installs systemd/ and rootfs-overlay/ from the checkout; no file of the layer
    repeats one of theirs."""
    shared = {p.read_bytes(): p for d in ("systemd", "rootfs-overlay", "rauc") for p in (REPO / d).rglob("*") if p.is_file()}
    copies = [f"{p.relative_to(REPO)} = {shared[p.read_bytes()].relative_to(REPO)}"
              for p in LAYER.rglob("*") if p.is_file() and p.read_bytes() in shared]
    assert not copies, copies
