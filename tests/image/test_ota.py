"""A/B updates with RAUC on a device of its own (a writable copy of the image, rebooted and
power-cut as a device would be), tested from the host: the layout, a signed update to a newer
build, a foreign signature, a build whose gateway never gets healthy, and power cuts during
install. The bundles reach the guest on a second, read-only disk (/dev/vdb).

Fixtures build on each other: the image -> two more builds made from its root file system (its
gateway stamped with a newer version, and a gateway that fails at start) -> their bundles -> a
device booted from a copy of the image.
The tests run in file order on that one device; each leaves it booted and healthy.
"""

import asyncio
import hashlib
import json
import os
import shutil
import struct
import subprocess
import tempfile
import time
import types
import urllib.request

import pytest
from mcp import Client

from conftest import ARCH, IMAGE_DIR, REPO, Vm, guest_exec

NEW_VERSION = "0.1.0+ota.2"
BROKEN_VERSION = "0.1.0+ota.3-broken"
BOOT_TRIES = 3  # MCP_EDGE_BOOT_TRIES's default in rauc-systemd-boot


def run(argv, **kwargs):
    return subprocess.run(argv, check=True, **kwargs)


def build_from(image_dir, out, version, gateway):
    """Another build of the image in image_dir: its root file system with /usr/bin/mcp-gateway
    replaced by gateway (debugfs, no mount), labelled version, as build-image.sh writes it."""
    out.mkdir()
    rootfs = out / "rootfs.ext4"
    shutil.copy(image_dir / "rootfs.ext4", rootfs)
    for request in ("rm /usr/bin/mcp-gateway", f"write {gateway} /usr/bin/mcp-gateway",
                    "sif /usr/bin/mcp-gateway mode 0100755"):
        run(["debugfs", "-w", "-R", request, str(rootfs)], capture_output=True)
    (out / "version").write_text(version + "\n")
    for name in ("compatible", "source-date-epoch"):
        shutil.copy(image_dir / name, out / name)
    return out


@pytest.fixture(scope="module")
def bundles(image, tmp_path_factory):
    """Signed bundles: a newer build, the same signed by a stranger's CA, and a build whose
    gateway exits at once (its binary replaced by a failing one, as a bad build would).

    The newer build is the image's own with its gateway stamped with a newer version by
    qemu/stamp-version.sh, which is what build-image.sh does for MCP_EDGE_VERSION before it
    bootstraps the same Debian tree again (the second-build test in test_boot.py runs that
    whole build; a third one here would only add minutes)."""
    work = tmp_path_factory.mktemp("bundles")
    gateway = work / "mcp-gateway"
    run(["debugfs", "-R", f"dump -p /usr/bin/mcp-gateway {gateway}", str(IMAGE_DIR / "rootfs.ext4")], capture_output=True)
    run(["bash", str(REPO / "qemu" / "stamp-version.sh"), str(gateway), NEW_VERSION])
    newer = build_from(IMAGE_DIR, work / "newer", NEW_VERSION, gateway)
    out = work / "bundles"
    out.mkdir()
    run(["bash", str(REPO / "qemu" / "build-bundle.sh"), str(newer), str(out / "newer.raucb")])

    # The same content, signed again under a CA the device does not trust.
    stranger = work / "stranger-keys"
    run(["bash", str(REPO / "qemu" / "ota-keys.sh"), str(stranger)], env=dict(os.environ, MCP_EDGE_KEY_SUBJECT="stranger"))
    run(["rauc", "resign", f"--cert={stranger / 'signing.cert.pem'}", f"--key={stranger / 'signing.key.pem'}",
         f"--keyring={REPO / '.cache' / 'ota-keys' / 'ca.cert.pem'}", f"--signing-keyring={stranger / 'ca.cert.pem'}",
         str(out / "newer.raucb"), str(out / "stranger.raucb")],
        capture_output=True)

    failing = work / "failing-gateway"
    failing.write_text("#!/bin/sh\necho 'mcp-gateway: this build fails at start (OTA rollback test)' >&2\nexit 1\n")
    broken = build_from(IMAGE_DIR, work / "broken", BROKEN_VERSION, failing)
    run(["bash", str(REPO / "qemu" / "build-bundle.sh"), str(broken), str(out / "broken.raucb")])

    for name in ("newer", "stranger", "broken"):
        size = (out / f"{name}.raucb").stat().st_size
        print(f"\nbundle {name}: {size / 2**20:.1f} MiB")
    disk = work / "bundles.ext4"
    total = sum(f.stat().st_size for f in out.iterdir())
    run(["mkfs.ext4", "-q", "-d", str(out), "-L", "bundles", str(disk), f"{total // 2**20 + 64}M"])
    return types.SimpleNamespace(disk=disk, dir=out, newer=newer)


@pytest.fixture(scope="module")
def device(image, bundles):
    """A device booted from its own copy of the image, bundles on /dev/vdb (mounted at /mnt)."""
    with tempfile.TemporaryDirectory(prefix="mcp-edge-ota.") as state:
        disk = os.path.join(state, "disk.img")
        run(["cp", "--sparse=always", str(image), disk])
        machine = Vm(disk, state, writable=True, extra_disk=bundles.disk)
        try:
            machine.wait_ready()
            print(f"\ndevice ready {machine.ready_after:.1f} s after power-on (TCG)")
            yield machine
        finally:
            machine.stop()


@pytest.fixture(autouse=True)
def device_ready(request):
    """Each test starts on a device whose gateway answers, whatever the test before left."""
    if "device" in request.fixturenames:
        request.getfixturevalue("device").wait_ready()


def squashfs_payload(bundle):
    """The squashfs image at the start of a bundle (its superblock says how long it is)."""
    data = bundle.read_bytes()
    assert data[:4] == b"hsqs", "a bundle starts with its squashfs payload"
    return data[: struct.unpack_from("<Q", data, 40)[0]]


def test_two_bundles_of_one_build_share_their_payload(bundles, tmp_path):
    """The squashfs payload is reproducible; the verity salt and the signature are not."""
    again = tmp_path / "newer-again.raucb"
    run(["bash", str(REPO / "qemu" / "build-bundle.sh"), str(bundles.newer), str(again)])
    first, second = (bundles.dir / "newer.raucb").read_bytes(), again.read_bytes()
    payload = squashfs_payload(bundles.dir / "newer.raucb")
    assert hashlib.sha256(payload).digest() == hashlib.sha256(squashfs_payload(again)).digest()
    differ = next((i for i, (a, b) in enumerate(zip(first, second)) if a != b), None)
    print(f"\nbundle payload {len(payload)} bytes identical; the bundles first differ at byte {differ} "
          f"of {len(first)} (verity hash tree with its random salt, then the signature)")
    assert differ is not None and differ >= len(payload)


def sh(vm, script, timeout=120, check=True):
    code, out = guest_exec(vm, ["/bin/sh", "-c", script], timeout=timeout)
    if check:
        assert code == 0, f"{script}: exit {code}\n{out}"
    return out


def update_status(vm):
    status, body = vm.get("/v1/update", timeout=30)
    assert status == 200, body
    return body


def slot(status, bootname):
    return next(s for s in status["slots"] if s["bootname"] == bootname)


def boot_id(vm):
    return sh(vm, "cat /proc/sys/kernel/random/boot_id").strip()


def reboot(vm):
    """Asks the guest to reboot; returns its boot id from before. Nobody waits for systemctl's
    exit status: QEMU may be gone before the guest agent could report it."""
    old = boot_id(vm)
    guest_exec(vm, ["/usr/bin/systemctl", "reboot"], wait=False)
    return old


def wait_for_reboot(vm, old_boot_id, timeout=600):
    """Waits until the guest runs a boot other than old_boot_id and its gateway is ready."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            vm.wait_ready(timeout=max(5, deadline - time.monotonic()))
            if boot_id(vm) != old_boot_id:
                return
        except (AssertionError, OSError):
            pass
        time.sleep(2)
    raise AssertionError(f"the device did not come back from a reboot within {timeout} s")


def wait_marked_good(vm, timeout=240):
    """Waits until mcp-gateway-mark-good.service has judged this boot."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = sh(vm, "systemctl show -P ActiveState mcp-gateway-mark-good.service").strip()
        if state in ("active", "failed"):
            assert state == "active", sh(vm, "journalctl -b -u mcp-gateway-mark-good --no-pager", check=False)
            return
        time.sleep(2)
    raise AssertionError("mcp-gateway-mark-good.service did not finish")


def mount_bundles(vm):
    sh(vm, "mountpoint -q /mnt || mount -o ro /dev/vdb /mnt")


def test_root_is_read_only_and_the_state_is_on_the_data_partition(device):
    out = sh(device, "touch /usr/mcp-edge-write-test 2>&1", check=False)
    assert "Read-only file system" in out, out
    assert sh(device, "findmnt -n -o OPTIONS /").startswith("ro"), sh(device, "findmnt /")
    # /etc and /var are overlays whose changes live on the data partition.
    for directory in ("/etc", "/var"):
        options = sh(device, f"findmnt -n -o FSTYPE,OPTIONS {directory}")
        assert options.startswith("overlay") and f"upperdir=/data/overlay{directory}/upper" in options, options
    assert sh(device, "findmnt -n -o SOURCE /data").strip() in ("/dev/vda4", "/dev/disk/by-partlabel/data"), \
        sh(device, "findmnt /data")
    # The gateway's state (queue, TPM event log) is in the /var overlay's upper layer.
    files = sh(device, "ls /data/overlay/var/upper/lib/private/mcp-edge")
    assert "tpm-measurements.jsonl" in files, files
    machine_id = sh(device, "cat /etc/machine-id").strip()
    assert len(machine_id) == 32 and sh(device, "cat /data/overlay/etc/upper/machine-id").strip() == machine_id

    status = update_status(device)
    print(f"\nin the booted image: /v1/update {json.dumps(status)}")
    assert status["compatible"] == f"mcp-edge-{ARCH}-uefi"
    assert status["booted"] == "a" and status["primary"] == "a"
    assert slot(status, "a")["boot_status"] == "good"
    assert slot(status, "b")["boot_status"] == "bad"  # never installed: no boot entry
    assert status["last_install"] is None
    rauc = sh(device, "rauc status")
    assert "Booted from: rootfs.0 (a)" in rauc, rauc


def test_only_root_may_drive_rauc(device):
    # Anyone may read the status (the gateway does, without privileges) ...
    sh(device, "setpriv --reuid=65534 --regid=65534 --clear-groups rauc status >/dev/null")
    # ... but marking, activating or installing is refused to everyone but root.
    out = sh(device, "setpriv --reuid=65534 --regid=65534 --clear-groups rauc status mark-bad other 2>&1", check=False)
    assert "Rejected send message" in out and "member=\"Mark\"" in out, out
    assert update_status(device)["primary"] == "a"


def test_a_bundle_signed_by_another_key_is_refused(device):
    mount_bundles(device)
    entries_before = sh(device, "ls /boot/efi/loader/entries")
    before = update_status(device)
    code, out = guest_exec(device, ["/usr/bin/rauc", "install", "/mnt/stranger.raucb"], timeout=300)
    print(f"\nin the booted image: rauc install stranger.raucb: exit {code}: {out.strip().splitlines()[-1:]}")
    assert code != 0, out
    log = sh(device, "journalctl -b -u rauc --no-pager -q | tail -n 20")
    assert "signature" in (out + log).lower() or "certificate" in (out + log).lower(), out + log
    assert sh(device, "ls /boot/efi/loader/entries") == entries_before
    assert update_status(device) == before


def add_state_before_the_update(vm):
    """A queued request (the cloud is unreachable) and the gateway's TPM event log."""
    # A configuration override on the data partition: a cloud that cannot be reached, so a
    # deferred completion is queued.
    sh(vm, "printf '\\n[models]\\nrouting = \"cloud_only\"\\ncloud_endpoint = \"http://127.0.0.1:9/v1\"\\n' >> /etc/mcp/mcp-edge.toml"
           " && mcp-gateway check-config /etc/mcp/mcp-edge.toml && systemctl restart mcp-gateway")
    vm.wait_ready(timeout=120)
    request = urllib.request.Request(vm.url + "/v1/chat/completions", method="POST",
                                     data=json.dumps({"model": "cloud", "defer": True, "messages": [
                                         {"role": "user", "content": "keep me across the update"}]}).encode(),
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.status == 202
        queued = json.loads(response.read())
    log = sh(vm, "cat /var/lib/mcp-edge/tpm-measurements.jsonl")
    return queued["id"], log.splitlines()


def test_a_signed_update_to_a_newer_build(device):
    mount_bundles(device)
    entry_id, measurements = add_state_before_the_update(device)
    started = time.monotonic()
    code, out = guest_exec(device, ["/usr/bin/rauc", "install", "/mnt/newer.raucb"], timeout=600)
    install_seconds = time.monotonic() - started
    assert code == 0, out
    print(f"\nin the booted image: rauc install newer.raucb took {install_seconds:.1f} s (TCG)")
    status = update_status(device)
    assert status["booted"] == "a" and status["primary"] == "b", status
    assert status["last_install"]["outcome"] == "awaiting reboot", status
    assert status["last_install"]["bundle_version"] == NEW_VERSION

    old = reboot(device)
    rebooted = time.monotonic()
    wait_for_reboot(device, old)
    wait_marked_good(device)
    print(f"in the booted image: reboot to a healthy new slot took {time.monotonic() - rebooted:.1f} s (TCG)")

    _, health = device.get("/health")
    assert health["version"] == NEW_VERSION, health

    async def through_mcp():
        async with Client(device.url + "/mcp", mode="legacy", raise_exceptions=True) as client:
            info = await client.call_tool("device_info", {})
            update = await client.call_tool("update_status", {})
            return client.server_info.version, info.structured_content, update.structured_content

    version, info, update = asyncio.run(through_mcp())
    assert version == NEW_VERSION and info["hostname"] == "mcp-edge"
    assert update["booted"] == "b" and update["last_install"]["bundle_version"] == NEW_VERSION, update

    status = update_status(device)
    assert status["booted"] == "b" and status["primary"] == "b", status
    assert slot(status, "b")["boot_status"] == "good" and slot(status, "a")["boot_status"] == "good"
    assert status["last_install"] == {**status["last_install"], "slot": "b", "outcome": "running",
                                      "bundle_version": NEW_VERSION}
    entries = sh(device, "ls /boot/efi/loader/entries").split()
    assert any(e.startswith("mcp-edge-2-b.conf") for e in entries), entries  # counter dropped: good

    # What the device kept across the update: the queued request, the event log.
    code, entry = device.get(f"/v1/queue/{entry_id}")
    assert code == 200 and entry["id"] == entry_id, entry
    after = sh(device, "cat /var/lib/mcp-edge/tpm-measurements.jsonl").splitlines()
    assert after[: len(measurements)] == measurements
    assert len(after) > len(measurements)  # the new build measured itself on top


def test_a_build_whose_gateway_never_gets_healthy_is_rolled_back(device):
    mount_bundles(device)
    before = update_status(device)
    good, trial = before["booted"], "a" if before["booted"] == "b" else "b"
    code, out = guest_exec(device, ["/usr/bin/rauc", "install", "/mnt/broken.raucb"], timeout=600)
    assert code == 0, out
    assert update_status(device)["primary"] == trial
    first = reboot(device)
    started = time.monotonic()
    # The broken slot boots BOOT_TRIES times, each time its gateway fails and the device
    # reboots; then systemd-boot starts the good slot again. Nobody touches the device.
    deadline = started + 900
    while time.monotonic() < deadline:
        try:
            device.wait_ready(timeout=30)
            if boot_id(device) != first and update_status(device)["booted"] == good:
                break
        except (AssertionError, OSError):
            pass
        time.sleep(3)
    else:
        raise AssertionError("the device did not come back on the good slot")
    wait_marked_good(device)
    print(f"\nin the booted image: rolled back to slot {good} {time.monotonic() - started:.1f} s after the reboot (TCG)")
    status = update_status(device)
    assert status["booted"] == good and status["primary"] == good, status
    assert slot(status, trial)["boot_status"] == "bad", status
    assert status["last_install"]["outcome"] == "rolled back", status
    boots = sh(device, "journalctl --list-boots --no-pager | tail -n 5")
    trials = sh(device, "journalctl --no-pager -q -u mcp-gateway-mark-good --grep 'on trial and unhealthy'")
    assert len(trials.strip().splitlines()) == BOOT_TRIES, boots + trials
    print(f"in the booted image: {len(trials.strip().splitlines())} failed tries of slot {trial}")


def test_power_cuts_during_install_always_leave_a_good_slot(device):
    """QEMU is killed at several points of `rauc install`; each time the next boot comes up on
    a good slot with a healthy gateway. Each point is watched for in the guest (a shell loop on
    RAUC's progress, the backend's temporary files on the ESP, the install's last line), and
    the plug is pulled as soon as that loop returns."""
    progress = "busctl get-property de.pengutronix.rauc / de.pengutronix.rauc.Installer Progress 2>/dev/null"
    cut_points = {
        "checking the bundle": f"until {progress} | awk '{{exit !($2 >= 20)}}'; do sleep 0.1; done",
        "writing the slot": f"until {progress} | awk '/Copying/ {{exit !($2 >= 60)}} {{exit 1}}'; do sleep 0.1; done",
        "copying the boot files to the ESP": "until ls /boot/efi/EFI/mcp-edge/*/*.new >/dev/null 2>&1; do :; done",
        "installed, before the reboot": "until grep -q succeeded /run/install.log; do sleep 0.1; done",
    }
    for point, wait in cut_points.items():
        mount_bundles(device)
        booted = update_status(device)["booted"]
        sh(device, "(rauc install /mnt/newer.raucb >/run/install.log 2>&1 &)")
        sh(device, wait, timeout=300)
        device.power_cut()
        device.start()
        device.wait_ready()
        wait_marked_good(device)
        status = update_status(device)
        now = status["booted"]
        assert slot(status, now)["boot_status"] == "good", status
        print(f"\npower cut while {point}, installing from slot {booted}: came up on slot {now}, healthy")
    print(f"{len(cut_points)} cut points tried")
