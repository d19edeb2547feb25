"""Fixtures for the whole-image tests, each building on the one before:
built image -> booted VM (with its own swtpm) -> gateway ready on the forwarded port.

The image is built once per session with qemu/build-image.sh (about 2 minutes for x86_64) and
booted with qemu/run.sh under TCG. Commands run in the guest through the QEMU guest agent. On
any failure the tail of the serial console and of the guest's journal are printed.

Environment:
  MCP_EDGE_ARCH=arm64     test the arm64 image (default amd64): the same tests, the image from
                          .cache/image-arm64, booted in qemu-system-aarch64
  MCP_EDGE_PREBUILT=1     test the image already in the image folder instead of building it
                          (the image an earlier run of the test command built, for the arm64 OTA
                          tests in docs/IMAGE.md)
"""

import hashlib
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ARCH = os.environ.get("MCP_EDGE_ARCH", "amd64")
assert ARCH in ("amd64", "arm64"), f"MCP_EDGE_ARCH={ARCH}: amd64 or arm64"
IMAGE_DIR = REPO / ".cache" / ("image" if ARCH == "amd64" else f"image-{ARCH}")
IMAGE_NAME = f"mcp-edge-{ARCH}.img"
PI_CARD_NAME = "mcp-edge-rpi4.img"
# The Raspberry Pi card is made from the arm64 build only.
collect_ignore = [] if ARCH == "arm64" else ["test_pi_card.py"]
READY_TIMEOUT = 240  # seconds; TCG boots in about 20


# Every VM started. Each runs in a session of its own (so that a power cut can kill QEMU and
# its swtpm together), out of reach of a signal to the test run's process group: when
# scripts/test.sh stops this run with SIGTERM, the handler below takes them along.
RUNNING = []


def _power_off_all(signum, _frame):
    for machine in RUNNING:
        machine.power_cut()
    raise SystemExit(128 + signum)


signal.signal(signal.SIGTERM, _power_off_all)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def built(name, script):
    """IMAGE_DIR/name, made from this checkout by qemu/<script>; with MCP_EDGE_PREBUILT=1 the one
    an earlier step of the same test command made, checked against the sha256 it recorded."""
    path = IMAGE_DIR / name
    if os.environ.get("MCP_EDGE_PREBUILT") == "1":
        assert path.exists(), f"MCP_EDGE_PREBUILT=1 but {path} was not built"
        recorded = (IMAGE_DIR / f"{name}.sha256").read_text().split()[0]
        assert sha256_file(path) == recorded, f"{path} changed after its build"
    else:
        subprocess.run(["bash", str(REPO / "qemu" / script), str(IMAGE_DIR)], check=True)
        assert path.exists()
    return path


@pytest.fixture(scope="session")
def image():
    """The reference image for ARCH."""
    return built(IMAGE_NAME, "build-image.sh")


@pytest.fixture(scope="session")
def card(image):
    """The Raspberry Pi 4 card made from the arm64 image build."""
    return built(PI_CARD_NAME, "build-pi-card.sh")


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Vm:
    """QEMU running the image through qemu/run.sh. With writable=True the image file itself is
    the device's disk (pass a copy) and a guest reboot reboots instead of ending QEMU."""

    def __init__(self, image, state, writable=False, extra_disk=None):
        self.image = image
        self.state = Path(state)
        self.port = free_port()
        self.writable = writable
        self.extra_disk = extra_disk
        self.boots = 0
        self.ready_after = None
        self.start()

    def start(self):
        """Powers the machine on (again): same disk, TPM state and firmware variables."""
        self.boots += 1
        self.serial = self.state / f"serial-{self.boots}.log"
        env = dict(os.environ, MCP_EDGE_PORT=str(self.port), MCP_EDGE_SERIAL=str(self.serial),
                   MCP_EDGE_STATE=str(self.state), MCP_EDGE_WRITABLE="1" if self.writable else "0",
                   MCP_EDGE_EXTRA_DISK=str(self.extra_disk or ""))
        self.started = time.monotonic()
        self.process = subprocess.Popen(["bash", str(REPO / "qemu" / "run.sh"), str(self.image)], env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        RUNNING.append(self)

    def power_cut(self):
        """Pulls the plug: QEMU and its TPM die at once; what the guest had not written is lost."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, 9)
            self.process.wait(timeout=20)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def get(self, path, timeout=5):
        with urllib.request.urlopen(self.url + path, timeout=timeout) as response:
            return response.status, json.loads(response.read())

    def wait_ready(self, timeout=READY_TIMEOUT):
        """Polls /health through the port forward until the gateway answers 200 (the gateway
        answers only after systemd's socket has started it and it is listening)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"QEMU exited ({self.process.returncode}): {self.stderr()}"
            try:
                status, body = self.get("/health", timeout=2)
                if status == 200:
                    self.ready_after = time.monotonic() - self.started
                    return body
            except OSError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"the gateway was not ready within {timeout} s")

    def qmp(self, command):
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(self.state / "qmp.sock"))
            reader = s.makefile("r")
            reader.readline()  # greeting
            for message in ({"execute": "qmp_capabilities"}, {"execute": command}):
                s.sendall(json.dumps(message).encode() + b"\n")
                reader.readline()

    def serial_tail(self, lines=60):
        if not self.serial.exists():
            return "(no serial output)"
        return "\n".join(self.serial.read_text(errors="replace").splitlines()[-lines:])

    def stderr(self):
        return self.process.stderr.read().decode(errors="replace") if self.process.poll() is not None else ""

    def stop(self):
        if self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)


@pytest.fixture(scope="session")
def vm(image):
    """A booted VM whose gateway is ready."""
    with tempfile.TemporaryDirectory(prefix="mcp-edge-vm.") as state:
        machine = Vm(image, state)
        try:
            machine.wait_ready()
            print(f"\ngateway ready {machine.ready_after:.1f} s after QEMU started (TCG)")
            yield machine
        finally:
            machine.stop()


def pytest_collection_modifyitems(items):
    """The OTA tests boot a device of their own, many times: they run last, once the shared VM
    has been powered off (test_zz_shutdown.py), so that two guests never share the two cores."""
    items.sort(key=lambda item: item.module.__name__ == "test_ota")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    funcargs = getattr(item, "funcargs", {})
    machine = funcargs.get("vm") or funcargs.get("device")
    if report.failed and machine is not None:
        report.sections.append(("serial console (tail)", machine.serial_tail()))
        if machine.process.poll() is None:
            try:
                _, journal = guest_exec(machine, ["/usr/bin/journalctl", "-b", "-n", "80", "--no-pager"], timeout=20)
            except Exception as error:  # the guest may be the thing that broke
                journal = f"(journal not readable: {error})"
            report.sections.append(("guest journal (tail)", journal))


def guest_exec(vm, argv, timeout=60, wait=True):
    """Runs a command in the guest through the QEMU guest agent; returns (exit code, stdout).
    With wait=False it returns (None, "") once the command has started (for a reboot, whose
    exit status nobody will be there to report)."""
    import base64

    def call(sock, reader, message):
        sock.sendall(json.dumps(message).encode() + b"\n")
        while True:
            answer = json.loads(reader.readline())
            if "return" in answer or "error" in answer:
                assert "error" not in answer, answer
                return answer["return"]

    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(timeout)
        sock.connect(str(vm.state / "qga.sock"))
        reader = sock.makefile("r")
        # The agent may have seen a half-finished exchange: sync first.
        call(sock, reader, {"execute": "guest-sync", "arguments": {"id": 4711}})
        pid = call(sock, reader, {"execute": "guest-exec",
                                  "arguments": {"path": argv[0], "arg": argv[1:], "capture-output": wait}})["pid"]
        if not wait:
            return None, ""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = call(sock, reader, {"execute": "guest-exec-status", "arguments": {"pid": pid}})
            if status.get("exited"):
                out = base64.b64decode(status.get("out-data", "")).decode(errors="replace")
                return status.get("exitcode"), out
            time.sleep(0.2)
    raise AssertionError(f"{argv} did not finish in the guest within {timeout} s")
